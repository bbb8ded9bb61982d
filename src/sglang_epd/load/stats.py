"""Exact statistics over raw samples (dicts as written to samples.jsonl)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import samples as kinds

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
LATENCY_METRICS = ("ttft_ms", "ttfb_ms", "tpot_ms", "itl_ms", "e2e_ms")

Sample = Mapping[str, Any]


def percentile_key(p: float) -> str:
    return f"p{p:g}"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between ranks (numpy's default); infinite
    values (requests still pending) sort last and are returned as such."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    a, b = sorted_values[low], sorted_values[high]
    fraction = rank - low
    if fraction == 0:
        return a
    if math.isinf(b):
        return b
    return a + (b - a) * fraction


def describe(values: Iterable[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    finite = [v for v in ordered if math.isfinite(v)]
    result: dict[str, float | int | None] = {
        "count": len(ordered),
        "mean": sum(finite) / len(finite) if len(finite) == len(ordered) else math.inf,
        "min": ordered[0],
        "max": ordered[-1],
    }
    result.update({percentile_key(p): percentile(ordered, p) for p in PERCENTILES})
    return result


def counted(samples: Iterable[Sample]) -> list[Sample]:
    """Samples that count: everything but requests cancelled by the end of the test."""
    return [s for s in samples if s.get("error") != kinds.CANCELLED]


def values_of(samples: Iterable[Sample], metric: str) -> list[float]:
    """A latency metric over the successful samples (`itl_ms` gives every inter-token latency)."""
    if metric == "itl_ms":
        return [v for s in samples if s.get("ok") for v in s.get("itl_ms") or ()]
    return [s[metric] for s in samples if s.get("ok") and s.get(metric) is not None]


def run_window(samples: Sequence[Sample]) -> tuple[float, float]:
    """(first start, last end) in Unix seconds."""
    starts = [s["start"] for s in samples]
    ends = [s["start"] + (s.get("e2e_ms") or 0) / 1000 for s in samples]
    return min(starts), max(ends)


def summarize(all_samples: Iterable[Sample]) -> dict[str, Any]:
    """Counts, throughput, latency distributions, per-images breakdown and the client-server TTFT bias."""
    every = list(all_samples)
    samples = counted(every)
    ok = [s for s in samples if s.get("ok")]
    errors = Counter(s.get("error") or "unknown" for s in samples if not s.get("ok"))
    first, last = run_window(samples) if samples else (0.0, 0.0)
    duration = last - first
    output_tokens = sum(s.get("output_tokens") or 0 for s in ok)
    summary: dict[str, Any] = {
        "requests": {
            "total": len(samples),
            "ok": len(ok),
            "errors": len(samples) - len(ok),
            "error_rate": (len(samples) - len(ok)) / len(samples) if samples else None,
            "errors_by_kind": dict(errors.most_common()),
            "error_examples": _error_examples(samples),
            "cancelled_at_end": len(every) - len(samples),
        },
        "duration_s": duration,
        "throughput": {
            "requests_per_s": len(ok) / duration if duration else None,
            "output_tokens_per_s": output_tokens / duration if duration else None,
            "images_per_s": sum(s.get("images") or 0 for s in ok) / duration if duration else None,
        },
        "metrics": {metric: describe(values_of(samples, metric)) for metric in LATENCY_METRICS},
        "by_images": by_images(samples),
    }
    lags = [s["lag_ms"] for s in samples if s.get("lag_ms") is not None]
    if lags:
        summary["schedule_lag_ms"] = describe(lags)
    bias = [s["ttft_ms"] - s["server_ttft_ms"] for s in ok if s.get("server_ttft_ms") is not None]
    if bias:
        summary["ttft_client_minus_server_ms"] = describe(bias)
    return summary


def by_images(samples: Sequence[Sample]) -> dict[str, dict[str, Any]]:
    groups: dict[int, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(int(sample.get("images") or 0), []).append(sample)
    return {
        str(count): {
            "requests": len(group),
            "errors": sum(not s.get("ok") for s in group),
            "ttft_ms": describe(values_of(group, "ttft_ms")),
            "e2e_ms": describe(values_of(group, "e2e_ms")),
        }
        for count, group in sorted(groups.items())
    }


def _error_examples(samples: Iterable[Sample]) -> dict[str, str]:
    examples: dict[str, str] = {}
    for sample in samples:
        kind = sample.get("error")
        if kind and kind not in examples:
            examples[kind] = sample.get("error_detail") or ""
    return examples
