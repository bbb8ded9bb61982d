"""Open-loop arrival plans and the ramp's step judgement (no Locust)."""

from __future__ import annotations

import itertools
import random

import pytest

from sglang_epd.load.arrivals import ArrivalSchedule
from sglang_epd.load.ramp import RampError, RampPlan, RampTracker
from sglang_epd.load.slo import SLOSpec


def test_poisson_arrivals_keep_their_mean_rate() -> None:
    schedule = ArrivalSchedule(20.0, "poisson", random.Random(3), start=100.0)
    times = [schedule.next() for _ in range(4000)]
    assert times == sorted(times)
    assert (times[-1] - 100.0) / len(times) == pytest.approx(1 / 20, rel=0.05)


def test_uniform_arrivals_are_evenly_spaced_after_a_random_phase() -> None:
    schedule = ArrivalSchedule(4.0, "uniform", random.Random(3), start=10.0)
    times = [schedule.next() for _ in range(5)]
    assert 10.0 <= times[0] < 10.25
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.25] * 4)


def test_plans_do_not_move_when_the_client_is_late() -> None:
    """The schedule is a function of the rate alone: reading it late changes no planned time."""
    early, late = (ArrivalSchedule(10.0, "poisson", random.Random(9), start=0.0) for _ in range(2))
    assert [early.next() for _ in range(10)] == [late.next() for _ in range(10)]


@pytest.mark.parametrize(("rate", "kind"), [(0, "poisson"), (1, "bursty")])
def test_bad_schedules(rate: float, kind: str) -> None:
    with pytest.raises(ValueError):
        ArrivalSchedule(rate, kind, random.Random(), 0.0)


def test_ramp_plan_parsing() -> None:
    plan = RampPlan.parse("0.5, 30, 10")
    assert (plan.step_rate, plan.step_seconds, plan.max_steps) == (0.5, 30, 10)
    assert plan.step_at(0) == 1 and plan.step_at(59.9) == 2 and plan.rate(3) == 1.5
    assert RampPlan.parse("2,10").max_steps == 20


@pytest.mark.parametrize("text", ["fast", "1", "1,2,3,4", "0,10", "1,1", "1,10,0"])
def test_bad_ramp_plans(text: str) -> None:
    with pytest.raises(RampError, match="--ramp"):
        RampPlan.parse(text)


def sample(start: float, ttft: float) -> dict:
    return {"ok": True, "start": start, "ttft_ms": ttft, "e2e_ms": ttft + 10, "error": None}


def test_steps_are_judged_after_their_grace_on_requests_started_in_their_window() -> None:
    tracker = RampTracker(RampPlan(1.0, 10.0, 5), SLOSpec.parse(["ttft_p95_ms=500"]))
    tracker.start_step(1, 0.0)
    tracker.start_step(2, 10.0)
    records = [
        sample(1.0, 9999),
        *(sample(t, 100) for t in (3.0, 5.0, 9.0)),
        *(sample(t, 900) for t in (13.0, 15.0)),
    ]
    tracker.judge_due(14.9, lambda: records, list)
    assert tracker.results == []  # step 1 ends at 10 s, its grace at 15 s
    tracker.judge_due(15.0, lambda: records, list)
    assert [r.status for r in tracker.results] == ["passed"]  # the slow request at 1 s is in the warm-up
    assert tracker.results[0].requests == 3
    tracker.start_step(3, 20.0)
    tracker.judge_due(25.0, lambda: records, list)
    assert [r.status for r in tracker.results] == ["passed", "slo_missed"]
    assert tracker.finished and tracker.max_rate_meeting_slo == 1.0
    assert "ttft_p95_ms" in tracker.results[1].reasons[0]


def test_requests_still_running_count_against_their_step() -> None:
    tracker = RampTracker(RampPlan(2.0, 4.0, 3), SLOSpec.parse(["ttft_p99_ms=500"]))
    tracker.start_step(1, 0.0)
    tracker.judge_due(6.0, lambda: [sample(2.0, 100)], lambda: [3.0])
    result = tracker.results[0]
    assert (result.requests, result.pending, result.status) == (2, 1, "slo_missed")
    assert tracker.max_rate_meeting_slo is None


def test_ramp_verdicts() -> None:
    spec = SLOSpec.parse(["ttft_p95_ms=500"])
    unjudged = RampTracker(RampPlan(1.0, 10.0), spec)
    assert unjudged.verdict().status == "could_not_run"
    assert "run for at least 15 s" in unjudged.verdict().reasons[0]
    failing = RampTracker(RampPlan(1.0, 4.0), spec)
    failing.start_step(1, 0.0)
    failing.judge_due(
        6.0, lambda: [{"ok": False, "start": 2.0, "error": "http_500", "error_detail": "down"}], list
    )
    verdict = failing.verdict()
    assert (verdict.status, int(verdict.exit_code)) == ("errors", 4)
    assert verdict.reasons[0].startswith("even the first step (1 req/s) failed")
