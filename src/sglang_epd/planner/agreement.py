"""The planner's agreement with the process-level simulator, as the last `make bench-plan` recorded it
(sglang_epd/bench/plan_agreement.py): every plan prints it, because the plan is only as good as that."""

from __future__ import annotations

import json
from pathlib import Path

from ..render import REPO_ROOT

AGREEMENT_FILE = REPO_ROOT / "docs" / "planner-agreement.json"
STATS = ("p50", "p95", "p99")


def relative_error(predicted: float, measured: float) -> float:
    return (predicted - measured) / measured


def agreement_line(path: Path = AGREEMENT_FILE) -> str:
    try:
        record = json.loads(path.read_text())
        runs = record["runs"]
        planned, replayed = (
            {s: max(abs(run[key][s]) for run in runs) for s in STATS} for key in ("error", "replay_error")
        )
    except FileNotFoundError:
        return (
            f"agreement with the process-level simulator: not measured ({path.name} missing; make bench-plan)"
        )
    except (ValueError, KeyError, TypeError) as error:
        return f"agreement with the process-level simulator: {path} unreadable ({error!r}; make bench-plan)"

    def errors(worst: dict[str, float]) -> str:
        return "/".join(f"{worst[s]:.0%}" for s in STATS)

    return (
        f"agreement with the process-level simulator ({len(runs)} layouts, {record['date']}, "
        f"{record['cost_profile']}): TTFT p50/p95/p99 off by at most {errors(planned)}, "
        f"{errors(replayed)} on the same requests (docs/planner.md)"
    )
