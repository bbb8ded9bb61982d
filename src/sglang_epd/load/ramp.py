"""A step ramp of open-loop arrival rate that finds the highest rate still meeting the SLO.

Step k (1, 2, ...) runs k open-loop users, each at STEP_RATE requests per second, for STEP_SECONDS: the
arrival rate is k x STEP_RATE. A step is judged on the requests that *started* in its measurement window
(the step without its first quarter, which lets queues settle), half a step after it ended, so that slow
requests of the step can still finish; requests of the window still running then count as failing the
per-request limits and as infinitely slow in the percentiles. The ramp stops at the first step that
misses the SLO (or exceeds the allowed error rate), or after MAX_STEPS; the answer is the rate of the
last step that met it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .slo import EXIT_CODES, SLOSpec, Verdict, decide, evaluate
from .stats import Sample

WARMUP_SHARE = 0.25
GRACE_SHARE = 0.5


class RampError(ValueError):
    pass


@dataclass(frozen=True)
class RampPlan:
    step_rate: float
    step_seconds: float
    max_steps: int = 20

    @classmethod
    def parse(cls, text: str) -> RampPlan:
        """`STEP_RATE,STEP_SECONDS[,MAX_STEPS]`, e.g. `0.5,30,10`: +0.5 req/s every 30 s, at most 10 steps."""
        parts = [p.strip() for p in text.split(",")]
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            plan = cls(float(parts[0]), float(parts[1]), int(parts[2]) if len(parts) == 3 else cls.max_steps)
        except ValueError:
            raise RampError(
                f"--ramp {text!r}: expected STEP_RATE,STEP_SECONDS[,MAX_STEPS], e.g. 0.5,30,10"
            ) from None
        if plan.step_rate <= 0 or plan.step_seconds < 2 or plan.max_steps < 1:
            raise RampError(f"--ramp {text!r}: the rate must be > 0, a step >= 2 s and MAX_STEPS >= 1")
        return plan

    def step_at(self, run_time: float) -> int:
        return int(run_time // self.step_seconds) + 1

    def rate(self, step: int) -> float:
        return step * self.step_rate

    @property
    def warmup_seconds(self) -> float:
        return self.step_seconds * WARMUP_SHARE

    @property
    def grace_seconds(self) -> float:
        return self.step_seconds * GRACE_SHARE


@dataclass
class StepResult:
    step: int
    rate: float
    window: tuple[float, float]
    requests: int
    pending: int
    status: str  # the step's verdict: passed, slo_missed, errors, could_not_run
    reasons: list[str]
    ttft_ms: dict[str, Any] = field(default_factory=dict)


@dataclass
class RampTracker:
    """Step start times (Unix seconds, as the samples' `start`) and the results of judged steps."""

    plan: RampPlan
    spec: SLOSpec
    starts: dict[int, float] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)

    def start_step(self, step: int, now: float) -> None:
        self.starts.setdefault(step, now)

    def window(self, step: int) -> tuple[float, float]:
        start = self.starts[step]
        end = self.starts.get(step + 1, start + self.plan.step_seconds)
        return start + self.plan.warmup_seconds, end

    def judge_due(
        self,
        now: float,
        samples: Callable[[], Sequence[Sample]],
        pending_starts: Callable[[], Iterable[float]],
    ) -> None:
        """Judge every started step whose grace period is over."""
        judged = {r.step for r in self.results}
        for step in sorted(self.starts):
            if step in judged or self.failed:
                continue
            low, high = self.window(step)
            if now < high + self.plan.grace_seconds:
                break
            in_window = [s for s in samples() if low <= s["start"] < high]
            pending = sum(low <= t < high for t in pending_starts())
            evaluation = evaluate(in_window, self.spec, pending=pending)
            verdict = decide(evaluation)
            ttft = next((c for c in evaluation.checks if c.key.startswith("ttft")), None)
            self.results.append(
                StepResult(
                    step=step,
                    rate=self.plan.rate(step),
                    window=(low, high),
                    requests=evaluation.requests,
                    pending=pending,
                    status=verdict.status,
                    reasons=list(verdict.reasons),
                    ttft_ms={"check": ttft.key, "actual": ttft.actual} if ttft else {},
                )
            )

    @property
    def failed(self) -> bool:
        return any(r.status != "passed" for r in self.results)

    @property
    def finished(self) -> bool:
        return self.failed or len(self.results) >= self.plan.max_steps

    @property
    def max_rate_meeting_slo(self) -> float | None:
        passed = [r.rate for r in self.results if r.status == "passed"]
        return max(passed) if passed else None

    def verdict(self) -> Verdict:
        """Passed when at least the first step met the SLO; else the first step's own verdict."""
        best = self.max_rate_meeting_slo
        if best is not None:
            return Verdict("passed", EXIT_CODES["passed"], (f"highest rate meeting the SLO: {best:g} req/s",))
        if not self.results:
            reason = f"no ramp step could be judged: run for at least {self.plan.step_seconds * 1.5:g} s"
            return Verdict("could_not_run", EXIT_CODES["could_not_run"], (reason,))
        first = self.results[0]
        reason = f"even the first step ({first.rate:g} req/s) failed: " + "; ".join(first.reasons)
        return Verdict(first.status, EXIT_CODES[first.status], (reason,))

    def report(self) -> dict[str, Any]:
        return {
            "step_rate": self.plan.step_rate,
            "step_seconds": self.plan.step_seconds,
            "max_steps": self.plan.max_steps,
            "steps": [r.__dict__ for r in self.results],
            "max_rate_meeting_slo": self.max_rate_meeting_slo,
        }
