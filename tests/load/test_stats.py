"""Exact statistics over raw samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sglang_epd.load.stats import PERCENTILES, describe, percentile, summarize, values_of


def ok(ttft: float, *, start: float = 0.0, images: int = 8, **extra: object) -> dict:
    return {
        "ok": True,
        "start": start,
        "images": images,
        "ttft_ms": ttft,
        "e2e_ms": ttft + 100,
        "itl_ms": [1.0, 2.0],
        "output_tokens": 3,
        "error": None,
        **extra,
    }


def failed(kind: str, start: float = 0.0) -> dict:
    return {
        "ok": False,
        "start": start,
        "images": 8,
        "error": kind,
        "error_detail": f"{kind} happened",
        "e2e_ms": 5.0,
    }


@pytest.mark.parametrize("p", PERCENTILES)
def test_percentiles_match_numpy(p: float) -> None:
    values = sorted(np.random.default_rng(7).exponential(100, 501))
    assert percentile(values, p) == pytest.approx(np.percentile(values, p))


def test_pending_requests_count_as_infinitely_slow() -> None:
    values = [1.0, 2.0, 3.0, math.inf]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 99) == math.inf
    assert describe(values)["mean"] == math.inf


def test_describe_and_empty() -> None:
    assert describe([]) == {"count": 0}
    described = describe([3.0, 1.0, 2.0])
    assert (described["count"], described["min"], described["max"], described["mean"], described["p50"]) == (
        3,
        1,
        3,
        2,
        2,
    )


def test_summary_counts_errors_excludes_cancelled_and_breaks_down_by_images() -> None:
    records = [
        ok(100, start=0.0, images=1, server_ttft_ms=99.0),
        ok(300, start=1.0, images=8, server_ttft_ms=296.0),
        failed("http_500", start=1.5),
        {**failed("cancelled", start=1.9)},
    ]
    summary = summarize(records)
    assert summary["requests"]["total"] == 3 and summary["requests"]["ok"] == 2
    assert summary["requests"]["error_rate"] == pytest.approx(1 / 3)
    assert summary["requests"]["errors_by_kind"] == {"http_500": 1}
    assert summary["requests"]["error_examples"] == {"http_500": "http_500 happened"}
    assert summary["requests"]["cancelled_at_end"] == 1
    assert summary["duration_s"] == pytest.approx(1.505)  # first start to the last end (the failure's)
    assert summary["metrics"]["ttft_ms"]["count"] == 2
    assert summary["metrics"]["itl_ms"]["count"] == 4
    assert set(summary["by_images"]) == {"1", "8"}
    assert summary["by_images"]["8"]["errors"] == 1
    assert summary["ttft_client_minus_server_ms"]["p50"] == pytest.approx(2.5)
    assert summary["throughput"]["output_tokens_per_s"] == pytest.approx(6 / 1.505)


def test_values_use_successful_requests_only() -> None:
    assert values_of([ok(5), failed("timeout")], "ttft_ms") == [5]
