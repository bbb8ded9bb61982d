"""The end of a run: summary.json and the console table."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..load import stats
from ..load.slo import Evaluation, SLOSpec, Verdict

SUMMARY_FILE = "summary.json"
SUMMARY_VERSION = 1
TABLE_STATS = ("count", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")
METRIC_LABELS = {"ttft_ms": "TTFT", "ttfb_ms": "TTFB", "tpot_ms": "TPOT", "itl_ms": "ITL", "e2e_ms": "E2E"}


def build_summary(
    samples: list[dict],
    spec: SLOSpec,
    evaluation: Evaluation | None,
    verdict: Verdict,
    run: dict[str, Any],
) -> dict[str, Any]:
    summary: dict[str, Any] = {"version": SUMMARY_VERSION, "run": run, **stats.summarize(samples)}
    summary["slo"] = {
        "spec": spec.describe(),
        "goodput": evaluation.goodput if evaluation else None,
        "checks": [asdict(c) for c in (*evaluation.checks, evaluation.error_check)] if evaluation else [],
    }
    summary["verdict"] = {
        "status": verdict.status,
        "exit_code": int(verdict.exit_code),
        "reasons": list(verdict.reasons),
    }
    return summary


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(document), indent=2) + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    """JSON has no infinity: write it as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def format_table(summary: dict[str, Any]) -> str:
    run, requests, throughput = summary["run"], summary["requests"], summary["throughput"]
    profile = run.get("profile")
    lines = [
        f"sglang-epd load test: profile {profile.get('name') if isinstance(profile, dict) else profile}, "
        f"host {run.get('host')}, {run.get('mode')}",
        f"{requests['total']} requests in {summary['duration_s']:.1f} s: {requests['ok']} ok, "
        f"{requests['errors']} failed ({_fmt(throughput['requests_per_s'], 2)} req/s, "
        f"{_fmt(throughput['output_tokens_per_s'])} output tok/s)",
        "",
        f"{'ms':<8}" + "".join(f"{name:>10}" for name in TABLE_STATS),
    ]
    for metric, label in METRIC_LABELS.items():
        described = summary["metrics"][metric]
        lines.append(f"{label:<8}" + "".join(f"{_fmt(described.get(name)):>10}" for name in TABLE_STATS))
    lines.append("")
    lines.append("TTFT by images per request (ms):")
    for count, group in summary["by_images"].items():
        ttft = group["ttft_ms"]
        lines.append(
            f"  {count:>2} images: {group['requests']:>6} requests  p50 {_fmt(ttft.get('p50')):>9}  "
            f"p90 {_fmt(ttft.get('p90')):>9}  p95 {_fmt(ttft.get('p95')):>9}  p99 {_fmt(ttft.get('p99')):>9}"
        )
    if bias := summary.get("ttft_client_minus_server_ms"):
        lines.append(
            f"client TTFT - server TTFT (ms): p50 {_fmt(bias['p50'], 2)}  p99 {_fmt(bias['p99'], 2)}  "
            f"max {_fmt(bias['max'], 2)}"
        )
    if lag := summary.get("schedule_lag_ms"):
        lines.append(f"open-loop schedule lag (ms): p50 {_fmt(lag['p50'], 2)}  p99 {_fmt(lag['p99'], 2)}")
    if client := run.get("client"):
        lags = [lag for lag in client.get("loop_lag_ms_by_process") or () if lag and lag.get("count")]
        worst = max(lags, key=lambda lag: lag["p99"]) if lags else None
        lines.append(
            f"client CPU: {_fmt(client.get('cpu_ms_per_request'), 2)} ms per request, "
            f"busiest process {_fmt((client.get('max_cpu_utilization') or 0) * 100, 0)}% busy"
            + (
                f"; event-loop lag p50 {_fmt(worst['p50'], 2)} p99 {_fmt(worst['p99'], 2)} ms"
                if worst
                else ""
            )
        )
    if summary["slo"]["goodput"] is not None:
        lines.append(f"goodput (requests meeting every per-request limit): {summary['slo']['goodput']:.1%}")
    for kind, count in requests["errors_by_kind"].items():
        lines.append(f"errors {kind}: {count}  (first: {requests['error_examples'].get(kind, '')[:160]})")
    if ramp := run.get("ramp"):
        lines += ["", "ramp steps:"]
        for step in ramp["steps"]:
            lines.append(
                f"  {step['rate']:>7.2f} req/s  {step['requests']:>5} requests  "
                + (
                    "met the SLO"
                    if step["status"] == "passed"
                    else f"{step['status']}: {'; '.join(step['reasons'])}"
                )
            )
        lines.append(f"highest rate meeting the SLO: {_fmt(ramp['max_rate_meeting_slo'], 2)} req/s")
    heading = "SLO over the whole run (each ramp step is judged above)" if ramp else "SLO"
    lines += ["", f"{heading}", f"{'':<20}{'limit':>12}{'actual':>12}  result"]
    for check in summary["slo"]["checks"]:
        percent = check["kind"] in ("goodput", "errors")
        limit = f"{check['limit']:.1%}" if percent else f"{check['limit']:g}"
        actual = (
            "-"
            if check["actual"] is None
            else (f"{check['actual']:.1%}" if percent else _fmt(check["actual"]))
        )
        lines.append(f"{check['key']:<20}{limit:>12}{actual:>12}  {'ok' if check['passed'] else 'MISSED'}")
    verdict = summary["verdict"]
    lines.append("")
    lines.append(f"verdict: {verdict['status'].upper().replace('_', ' ')} (exit code {verdict['exit_code']})")
    lines += [f"  {reason}" for reason in verdict["reasons"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m sglang_epd.reports.report RUN_DIR`: print a finished run's table again."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sglang_epd.reports.report", description=main.__doc__)
    parser.add_argument("run_dir", type=Path, help=f"a --results-dir holding {SUMMARY_FILE}")
    args = parser.parse_args(argv)
    path = args.run_dir / SUMMARY_FILE
    if not path.exists():
        parser.error(f"{path} does not exist: was the load test run with --results-dir {args.run_dir}?")
    print(format_table(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
