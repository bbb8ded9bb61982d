"""PNG pictures of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..load.stats import Sample, percentile, values_of

PLOT_PERCENTILES = (50.0, 90.0, 99.0)


def _pyplot():  # imported lazily: matplotlib costs ~0.5 s to import
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_run_plots(samples: Sequence[Sample], out_dir: Path, title: str) -> list[Path]:
    """ttft_by_images.png, ttft_over_time.png and ttft_cdf.png; nothing when no request succeeded."""
    ok = [s for s in samples if s.get("ok") and s.get("ttft_ms") is not None]
    if not ok:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    written = [
        _ttft_by_images(plt, ok, out_dir / "ttft_by_images.png", title),
        _ttft_over_time(plt, samples, out_dir / "ttft_over_time.png", title),
        _cdf(plt, {title: sorted(values_of(ok, "ttft_ms"))}, out_dir / "ttft_cdf.png", "TTFT CDF"),
    ]
    return written


def _ttft_by_images(plt, ok: Sequence[Sample], path: Path, title: str) -> Path:
    groups: dict[int, list[float]] = {}
    for sample in ok:
        groups.setdefault(int(sample.get("images") or 0), []).append(sample["ttft_ms"])
    counts = sorted(groups)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in PLOT_PERCENTILES:
        ax.plot(counts, [percentile(sorted(groups[c]), p) for c in counts], marker="o", label=f"p{p:g}")
    for c in counts:
        ax.annotate(
            f"n={len(groups[c])}",
            (c, percentile(sorted(groups[c]), PLOT_PERCENTILES[0])),
            textcoords="offset points",
            xytext=(0, -12),
            ha="center",
            fontsize=7,
            color="grey",
        )
    ax.set_xticks(counts)
    _label(ax, xlabel="images per request", ylabel="TTFT (ms)", title=f"TTFT by images per request - {title}")
    return _save(plt, fig, path)


def _ttft_over_time(plt, samples: Sequence[Sample], path: Path, title: str) -> Path:
    t0 = min(s["start"] for s in samples)
    ok = [s for s in samples if s.get("ok") and s.get("ttft_ms") is not None]
    failed = [s for s in samples if not s.get("ok") and s.get("error") != "cancelled"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.scatter([s["start"] - t0 for s in ok], [s["ttft_ms"] for s in ok], s=6, alpha=0.5, label="TTFT")
    window = max(5, len(ok) // 20)
    ordered = sorted(ok, key=lambda s: s["start"])
    if len(ordered) >= window:
        xs, ys = [], []
        for i in range(window, len(ordered) + 1):
            chunk = sorted(s["ttft_ms"] for s in ordered[i - window : i])
            xs.append(ordered[i - 1]["start"] - t0)
            ys.append(percentile(chunk, 95))
        ax.plot(xs, ys, color="C3", label=f"rolling p95 ({window} requests)")
    if failed:
        ax.scatter(
            [s["start"] - t0 for s in failed], [0] * len(failed), marker="x", color="red", label="failed"
        )
    _label(
        ax,
        xlabel="request start (s since the first request)",
        ylabel="TTFT (ms)",
        title=f"TTFT over time - {title}",
    )
    return _save(plt, fig, path)


def _cdf(plt, series: dict[str, list[float]], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, values in series.items():
        if values:
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post", label=label)
    _label(ax, xlabel="TTFT (ms)", ylabel="share of requests", title=title)
    return _save(plt, fig, path)


def write_cdf(series: dict[str, list[float]], path: Path, title: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _cdf(_pyplot(), {k: sorted(v) for k, v in series.items()}, path, title)


def _label(ax, *, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
