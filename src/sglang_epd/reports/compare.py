"""Runs side by side: `python -m sglang_epd.reports.compare RUN_DIR RUN_DIR ... [--labels a,b] [--out DIR]`.

Each RUN_DIR is a load test's results directory (summary.json and samples.jsonl). The first run is the
baseline: the table gives every other run's ratio to it (0.50x TTFT = half the baseline's TTFT). Writes
compare.md, compare.json and compare.png (TTFT percentiles with ratios, TTFT by images per request, and
the TTFT CDFs) into --out (default: the first run's parent directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..load.samples import SAMPLES_FILE, read_samples
from ..load.stats import Sample, percentile, values_of
from .report import SUMMARY_FILE, write_json

COLUMNS = (
    ("req/s", ("throughput", "requests_per_s"), True),
    ("TTFT p50", ("metrics", "ttft_ms", "p50"), False),
    ("TTFT p90", ("metrics", "ttft_ms", "p90"), False),
    ("TTFT p99", ("metrics", "ttft_ms", "p99"), False),
    ("TPOT p50", ("metrics", "tpot_ms", "p50"), False),
    ("E2E p50", ("metrics", "e2e_ms", "p50"), False),
    ("E2E p99", ("metrics", "e2e_ms", "p99"), False),
)
PLOT_PERCENTILES = ("p50", "p90", "p99")


class CompareError(ValueError):
    pass


@dataclass
class Run:
    label: str
    path: Path
    summary: dict[str, Any]
    samples: list[Sample]


def load_run(path: Path, label: str) -> Run:
    summary_path, samples_path = path / SUMMARY_FILE, path / SAMPLES_FILE
    if not summary_path.is_file():
        raise CompareError(f"{path} is not a load test result: {SUMMARY_FILE} is missing")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    samples = read_samples(samples_path) if samples_path.is_file() else []
    return Run(label, path, summary, samples)


def _get(summary: dict[str, Any], keys: Sequence[str]) -> float | None:
    value: Any = summary
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def comparison(runs: Sequence[Run]) -> dict[str, Any]:
    base = runs[0].summary
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "label": run.label,
            "path": str(run.path),
            "requests": run.summary["requests"]["total"],
        }
        row["error_rate"] = run.summary["requests"]["error_rate"]
        row["goodput"] = run.summary.get("slo", {}).get("goodput")
        row["verdict"] = run.summary.get("verdict", {}).get("status")
        for name, keys, _ in COLUMNS:
            value, reference = _get(run.summary, keys), _get(base, keys)
            row[name] = value
            row[f"{name} ratio"] = value / reference if value is not None and reference else None
        rows.append(row)
    return {"baseline": runs[0].label, "rows": rows}


def format_markdown(result: dict[str, Any]) -> str:
    header = ["run", "requests", *(name for name, _, _ in COLUMNS), "goodput", "errors", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["rows"]:
        cells = [row["label"], str(row["requests"])]
        for name, _, higher_is_better in COLUMNS:
            value, ratio = row[name], row[f"{name} ratio"]
            text = "-" if value is None else f"{value:.2f}" if higher_is_better else f"{value:.0f}"
            if ratio is not None and row is not result["rows"][0]:
                text += f" ({ratio:.2f}x)"
            cells.append(text)
        cells.append("-" if row["goodput"] is None else f"{row['goodput']:.1%}")
        cells.append("-" if row["error_rate"] is None else f"{row['error_rate']:.1%}")
        cells.append(row["verdict"] or "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\nRatios are to the baseline, {result['baseline']} "
        "(latency below 1x and req/s above 1x are better)."
    )
    return "\n".join(lines)


def plot(runs: Sequence[Run], path: Path) -> Path:
    from .plots import _label, _pyplot, _save

    plt = _pyplot()
    fig, (bars, by_images, cdf) = plt.subplots(1, 3, figsize=(17, 5))
    width = 0.8 / len(runs)
    base = runs[0].summary["metrics"]["ttft_ms"]
    for i, run in enumerate(runs):
        ttft = run.summary["metrics"]["ttft_ms"]
        values = [ttft.get(p) or 0 for p in PLOT_PERCENTILES]
        xs = [j + i * width for j in range(len(PLOT_PERCENTILES))]
        drawn = bars.bar(xs, values, width, label=run.label)
        if i:
            ratios = [
                f"{v / base[p]:.2f}x" if base.get(p) else ""
                for v, p in zip(values, PLOT_PERCENTILES, strict=True)
            ]
            bars.bar_label(drawn, ratios, fontsize=8)
    bars.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(PLOT_PERCENTILES))], PLOT_PERCENTILES)
    _label(
        bars, xlabel="percentile", ylabel="TTFT (ms)", title=f"TTFT percentiles (ratios to {runs[0].label})"
    )
    for run in runs:
        groups: dict[int, list[float]] = {}
        for sample in run.samples:
            if sample.get("ok") and sample.get("ttft_ms") is not None:
                groups.setdefault(int(sample.get("images") or 0), []).append(sample["ttft_ms"])
        counts = sorted(groups)
        by_images.plot(
            counts, [percentile(sorted(groups[c]), 50) for c in counts], marker="o", label=run.label
        )
        cdf_values = sorted(values_of(run.samples, "ttft_ms"))
        if cdf_values:
            cdf.step(
                cdf_values,
                [(k + 1) / len(cdf_values) for k in range(len(cdf_values))],
                where="post",
                label=run.label,
            )
    all_counts = sorted({int(s.get("images") or 0) for run in runs for s in run.samples})
    by_images.set_xticks(all_counts)
    _label(
        by_images, xlabel="images per request", ylabel="TTFT p50 (ms)", title="TTFT p50 by images per request"
    )
    _label(cdf, xlabel="TTFT (ms)", ylabel="share of requests", title="TTFT CDF")
    return _save(plt, fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sglang_epd.reports.compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="results directories; the first is the baseline")
    parser.add_argument("--labels", help="comma-separated names, one per run (default: the directory names)")
    parser.add_argument("--out", type=Path, help="where to write compare.md/.json/.png")
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [p.name for p in args.runs]
    try:
        if len(labels) != len(args.runs):
            raise CompareError(f"--labels has {len(labels)} names for {len(args.runs)} runs")
        runs = [load_run(path, label.strip()) for path, label in zip(args.runs, labels, strict=True)]
    except (CompareError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.runs[0].resolve().parent
    result = comparison(runs)
    table = format_markdown(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table + "\n", encoding="utf-8")
    write_json(out / "compare.json", result)
    picture = plot(runs, out / "compare.png")
    print(table)
    print(f"\nwrote {out / 'compare.md'}, {out / 'compare.json'}, {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
