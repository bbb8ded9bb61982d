"""SLO specs, evaluation, goodput and the verdict with its exit code."""

from __future__ import annotations

import pytest

from sglang_epd.load.slo import ExitCode, SLOError, SLOSpec, decide, evaluate, is_good


def ok(ttft: float, tpot: float | None = 10.0, e2e: float = 1000.0) -> dict:
    return {
        "ok": True,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "e2e_ms": e2e,
        "itl_ms": [tpot or 0.0],
        "error": None,
    }


def failed(kind: str) -> dict:
    return {"ok": False, "error": kind, "error_detail": f"{kind}: details"}


def test_parse_comma_separated_and_repeated_items() -> None:
    spec = SLOSpec.parse(
        [
            "ttft_p95_ms=2000,tpot_p99_ms=50",
            "e2e_mean_ms=9000",
            "ttft_ms=3000",
            "goodput_min=0.9",
            "error_rate_max=0.01",
            "itl_p999_ms=80",
        ]
    )
    assert [(a.metric, a.stat, a.limit_ms) for a in spec.aggregates] == [
        ("ttft_ms", "p95", 2000),
        ("tpot_ms", "p99", 50),
        ("e2e_ms", "mean", 9000),
        ("itl_ms", "p99.9", 80),
    ]
    assert spec.per_request_ms == {"ttft_ms": 3000}
    assert (spec.goodput_min, spec.error_rate_max) == (0.9, 0.01)


def test_default_spec_allows_no_errors() -> None:
    assert SLOSpec.parse([]).error_rate_max == 0.0


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("ttft_p95", "expected KEY=VALUE"),
        ("ttft_p95_ms=fast", "'fast' is not a number"),
        ("ttft_p42_ms=1", "unknown percentile 'p42'"),
        ("latency_p95_ms=1", "unknown metric 'latency'"),
        ("itl_ms=5", "unknown metric 'itl'"),
        ("goodput_min=90", "fraction from 0 to 1"),
        ("goodput_min=0.9", "needs at least one per-request limit"),
        ("speed=3", "unknown key 'speed'"),
        ("ttft_p95_ms=-1", "non-negative"),
    ],
)
def test_bad_items_say_what_is_wrong(item: str, message: str) -> None:
    with pytest.raises(SLOError, match=message.replace("(", r"\(").replace("[", r"\[")):
        SLOSpec.parse([item])


def test_latency_checks_and_goodput() -> None:
    spec = SLOSpec.parse(["ttft_p50_ms=150", "ttft_ms=250", "tpot_ms=20", "goodput_min=0.7"])
    records = [ok(100), ok(200), ok(300), ok(120, tpot=30), ok(110, tpot=None)]
    evaluation = evaluate(records, spec)
    assert [c.passed for c in evaluation.checks] == [True, False]  # p50 = 120; goodput = 3/5
    assert evaluation.goodput == pytest.approx(0.6)
    assert decide(evaluation).exit_code == ExitCode.SLO_MISSED
    assert "goodput 60.0% < 70.0%" in decide(evaluation).reasons


def test_a_request_without_a_tpot_is_not_held_to_the_tpot_limit() -> None:
    assert is_good(ok(100, tpot=None), {"tpot_ms": 1.0})
    assert not is_good(failed("timeout"), {"ttft_ms": 1e9})


def test_pending_requests_are_slow_and_not_good() -> None:
    spec = SLOSpec.parse(["ttft_p99_ms=500", "ttft_ms=500"])
    evaluation = evaluate([ok(100)] * 9, spec, pending=1)
    assert evaluation.requests == 10 and evaluation.goodput == pytest.approx(0.9)
    assert not evaluation.checks[0].passed


@pytest.mark.parametrize(
    ("records", "spec", "status", "code"),
    [
        ([ok(100)], [], "passed", ExitCode.PASSED),
        ([ok(100)], ["ttft_p95_ms=50"], "slo_missed", ExitCode.SLO_MISSED),
        ([ok(100), failed("http_500")], ["ttft_p95_ms=50"], "errors", ExitCode.ERRORS),
        ([ok(100), failed("http_500")], ["error_rate_max=0.5"], "passed", ExitCode.PASSED),
        ([failed("connect"), failed("connect")], [], "could_not_run", ExitCode.COULD_NOT_RUN),
        ([failed("connect"), failed("timeout")], [], "errors", ExitCode.ERRORS),
        ([failed("cancelled")], [], "could_not_run", ExitCode.COULD_NOT_RUN),
        ([], [], "could_not_run", ExitCode.COULD_NOT_RUN),
    ],
    ids=[
        "passed",
        "slo-missed",
        "errors-win-over-slo",
        "errors-allowed",
        "unreachable",
        "some-reached",
        "only-cancelled",
        "nothing",
    ],
)
def test_verdicts_most_severe_first(records: list, spec: list, status: str, code: ExitCode) -> None:
    verdict = decide(evaluate(records, SLOSpec.parse(spec)) if records else None)
    assert (verdict.status, verdict.exit_code) == (status, code)
    assert verdict.reasons or status == "passed"


def test_a_fatal_problem_is_could_not_run_with_its_message() -> None:
    verdict = decide(evaluate([ok(1)], SLOSpec()), fatal="cannot reach the target")
    assert verdict.exit_code == ExitCode.COULD_NOT_RUN and verdict.reasons == ("cannot reach the target",)


def test_error_reason_names_the_kinds_and_the_first_message() -> None:
    verdict = decide(evaluate([ok(1), failed("http_503"), failed("timeout")], SLOSpec()))
    assert "2 of 3 requests failed" in verdict.reasons[0]
    assert "http_503: 1, timeout: 1" in verdict.reasons[0]
    assert "http_503: details" in verdict.reasons[0]
