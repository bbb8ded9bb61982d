"""How well the planner's discrete-event model predicts the process-level simulator: for a few layouts and
rates, the chart with the planned values runs locally (simulated SGLang pods, the real router) under the
load test (Locust, open loop) with the same cost profile, and the measured TTFT percentiles are set
against the planner's for the same number of requests.

    python -m sglang_epd.bench.plan_agreement [--seconds 60] [--json docs/planner-agreement.json]

Figures, not assertions (tests/planner/test_agreement.py asserts one small case). `sglang-epd plan` prints
the worst errors of the last record in docs/planner-agreement.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ..load.profiles import load_profile
from ..load.samples import SAMPLES_FILE, read_samples
from ..load.simrun import SIM_VALUES, locust_command, sim_deployment
from ..load.slo import SLOSpec
from ..load.stats import describe
from ..planner.agreement import AGREEMENT_FILE, STATS, relative_error
from ..planner.command import PROFILES_DIR
from ..planner.des import StagedModel
from ..planner.layouts import Layout
from ..planner.plan import WARMUP_SHARE, Planner
from ..planner.workload import PlannedRequest, planned_requests
from ..scenarios import wait_for_registration
from ..sim.cost import COST_PROFILE_ENV, CostModel
from ..sim.cost_profiles import load_cost_profile

DEFAULT_COST_PROFILE = "qwen2.5-vl-7b-h100-derived"


@dataclass(frozen=True)
class Case:
    layout: Layout
    rate: float
    profile: str


CASES = (
    Case(Layout("epd", 4, 1, 1, 1, 1), 1.0, "kep-8img"),
    Case(Layout("epd", 2, 2, 1, 1, 1), 1.5, "mixed-1to8"),
    Case(Layout("pd", 0, 2, 1, 1, 1), 1.0, "kep-8img"),
    Case(Layout("encoder+collocated", 2, 1, 1), 1.0, "mixed-1to8"),
    Case(Layout("collocated", 0, 2, 1), 1.0, "kep-8img"),
)


@dataclass(frozen=True)
class Agreement:
    """`predicted`: the planner as users run it (its own Poisson arrivals, as many requests); `replayed`: the
    model on the very requests the load test sent (their start times, images and prompt tokens), which
    takes the arrivals' chance out and leaves the model's own error."""

    mode: str
    layout: str
    rate: float
    profile: str
    requests: int
    predicted: dict[str, float]
    replayed: dict[str, float]
    measured: dict[str, float]
    error: dict[str, float]
    replay_error: dict[str, float]
    before_server_ms: float  # median of the client's TTFT less the server's: client, router, the body's trip


def percentiles(values: Iterable[float]) -> dict[str, float]:
    described = describe(values)
    return {k: float(described[k]) for k in STATS}  # type: ignore[arg-type]


def after_warmup(values: Sequence[float]) -> Sequence[float]:
    """The first WARMUP_SHARE of the requests (by arrival) are not counted, as the planner counts."""
    return values[int(len(values) * WARMUP_SHARE) :]


def successful_by_start(samples: list[dict]) -> list[dict]:
    failed = [s for s in samples if not s.get("ok")]
    if failed:
        raise RuntimeError(
            f"{len(failed)} requests failed in the simulator run, e.g. {failed[0].get('error_detail')}"
        )
    return sorted(samples, key=lambda s: s["start"])


def replayed_requests(samples: list[dict], text_tokens: int) -> list[PlannedRequest]:
    """The load test's requests as the planner's: arriving at their start, with the vision tokens the
    simulator counted (the usage's prompt tokens less the text) shared evenly over their images."""
    first = samples[0]["start"]
    requests = []
    for index, sample in enumerate(samples):
        images = int(sample["images"] or 0)
        vision = max(0, int(sample["prompt_tokens"]) - text_tokens)
        tokens = tuple([vision // images] * images) if images else ()
        arrival = (sample["start"] - first) * 1000
        requests.append(PlannedRequest(index, arrival, tokens, text_tokens, int(sample["max_tokens"])))
    return requests


def compare(case: Case, cost: CostModel, samples: list[dict]) -> Agreement:
    """The planner's TTFT percentiles against a load test's samples of `case`."""
    ordered = successful_by_start(samples)
    measured = percentiles(after_warmup([s["ttft_ms"] for s in ordered]))
    profile = load_profile(case.profile, [PROFILES_DIR])
    planner = Planner(profile, SLOSpec.parse(["ttft_p95_ms=1e9"]), cost, requests=len(ordered))
    predicted = planner.predict(case.layout, case.rate).ttft
    text_tokens = planned_requests(profile, case.rate, 1, cost)[0].text_tokens
    replay = StagedModel(replayed_requests(ordered, text_tokens), cost).timings(case.layout)
    replayed = percentiles(after_warmup([t.ttft_ms for t in replay]))
    return Agreement(
        case.layout.mode,
        case.layout.label,
        case.rate,
        case.profile,
        len(ordered),
        {k: predicted[k] for k in STATS},
        replayed,
        measured,
        {k: relative_error(predicted[k], measured[k]) for k in STATS},
        {k: relative_error(replayed[k], measured[k]) for k in STATS},
        statistics.median(s["ttft_ms"] - s["server_ttft_ms"] for s in ordered if s.get("server_ttft_ms")),
    )


def load_test(case: Case, cost_profile: Path, seconds: float, workdir: Path) -> list[dict]:
    """The chart with the case's layout on this machine (simulator pods with the cost profile, the real
    router) under `seconds` of the load test at the case's rate; its samples."""
    values = workdir / "layout.yaml"
    values.write_text(yaml.safe_dump(case.layout.values()))
    results = workdir / "results"
    env = {COST_PROFILE_ENV: str(cost_profile)}
    with sim_deployment([SIM_VALUES, values], sim_env=env, workdir=workdir / "run") as run:
        if case.layout.uses_encoders:
            wait_for_registration(run, run.topology, timeout=60)
        load = ["--profile", case.profile, "--rate", f"{case.rate:g}", "-u", "4", "-r", "4"]
        load += ["-t", f"{seconds:g}s", "--only-summary", "--loglevel", "WARNING", "--no-plots"]
        locust = locust_command(run.router_url, [*load, "--results-dir", str(results)])
        finished = subprocess.run(locust, check=False, capture_output=True, text=True)
    if not (results / SAMPLES_FILE).is_file():
        raise RuntimeError(
            f"the load test wrote no samples (exit {finished.returncode}): {finished.stderr[-2000:]}"
        )
    return read_samples(results / SAMPLES_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="load per case (open loop)")
    parser.add_argument("--cost-profile", default=DEFAULT_COST_PROFILE)
    parser.add_argument(
        "--json", type=Path, help=f"write the record here (the planner reads {AGREEMENT_FILE})"
    )
    args = parser.parse_args(argv)
    rows = []
    print(
        f"planner vs process-level simulator, cost profile {args.cost_profile}, {args.seconds:g} s per case"
    )
    print(
        f"{'mode':<19} {'layout':<10} {'rate':>5} {'profile':<11} {'n':>4}  "
        "TTFT planned/replayed/measured (errors)"
    )
    profile = load_cost_profile(args.cost_profile)
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="sglang-epd-agreement-") as tmp:
            samples = load_test(case, profile.path, args.seconds, Path(tmp))  # type: ignore[arg-type]
        row = compare(case, profile.cost, samples)
        rows.append(row)
        cells = "  ".join(
            f"{s} {row.predicted[s]:.0f}/{row.replayed[s]:.0f}/{row.measured[s]:.0f} ms "
            f"({row.error[s]:+.0%}/{row.replay_error[s]:+.0%})"
            for s in STATS
        )
        cells += f"  before the server: {row.before_server_ms:.0f} ms"
        print(
            f"{row.mode:<19} {row.layout:<10} {row.rate:>5g} {row.profile:<11} {row.requests:>4}  {cells}",
            flush=True,
        )
    for label, attribute in (("planned", "error"), ("replayed", "replay_error")):
        worst = {s: max(abs(getattr(r, attribute)[s]) for r in rows) for s in STATS}
        print(f"worst errors, {label}: " + ", ".join(f"{s} {worst[s]:.0%}" for s in STATS))
    if args.json:
        record = {
            "date": f"{datetime.now(UTC):%Y-%m-%d}",
            "cost_profile": profile.label,
            "seconds_per_case": args.seconds,
            "runs": [asdict(r) for r in rows],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
