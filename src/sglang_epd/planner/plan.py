"""Rank every layout within a GPU budget by the discrete-event model's prediction for a workload and an
objective, and pick the best: the fewest GPUs that meet it, the lowest objective statistic among those."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..load.profiles import Profile
from ..load.ramp import RampPlan
from ..load.slo import Evaluation, SLOError, SLOSpec, evaluate
from ..load.stats import describe
from ..sim.cost import CostModel
from .des import StagedModel, Timing
from .layouts import Layout
from .workload import planned_requests

WARMUP_SHARE = 0.1  # the first requests meet an empty deployment: not counted
PREDICTED_METRICS = ("ttft_ms", "ttfb_ms", "tpot_ms", "e2e_ms")


def check_objective(spec: SLOSpec) -> None:
    """The planner predicts TTFT (TTFB is the same instant in the simulator's stream), TPOT and E2E."""
    named = [a.metric for a in spec.aggregates] + list(spec.per_request_ms)
    unknown = sorted({m for m in named if m not in PREDICTED_METRICS})
    if unknown:
        raise SLOError(
            f"--slo: the planner does not predict {', '.join(m.removesuffix('_ms') for m in unknown)}; "
            "it predicts ttft, ttfb, tpot and e2e (use tpot_* for inter-token latency)"
        )
    if not spec.aggregates and not spec.per_request_ms:
        raise SLOError("--slo names no latency objective; give one, e.g. ttft_p95_ms=1000")


@dataclass(frozen=True)
class Prediction:
    layout: Layout
    rate: float
    evaluation: Evaluation | None  # None: a stage is overloaded, nothing was simulated
    ttft: dict[str, float] = field(default_factory=dict)  # p50, p95, p99, mean
    goodput: float = 0.0  # share of requests within every latency limit of the objective
    load: dict[str, float] = field(default_factory=dict)  # busy share of each role's GPUs
    max_rate: float | None = None  # with a ramp: the highest step rate that met the objective

    @property
    def meets(self) -> bool:
        return self.evaluation is not None and self.evaluation.passed

    @property
    def objective_ms(self) -> float:
        """The first latency statistic of the objective (what ranks layouts of equal cost)."""
        if self.evaluation is None:
            return math.inf
        values = [c.actual for c in self.evaluation.checks if c.kind == "latency"]
        return values[0] if values and values[0] is not None else self.ttft.get("p95", math.inf)

    @property
    def busiest(self) -> str:
        if not self.load:
            return ""
        role = max(self.load, key=self.load.__getitem__)
        return f"{role} {self.load[role]:.0%}"


def samples_of(timings: Sequence[Timing]) -> list[dict[str, object]]:
    """The predicted requests as the load tests' samples (load/samples.py), so --slo is judged alike."""
    return [
        {"ok": True, "ttft_ms": t.ttft_ms, "ttfb_ms": t.ttft_ms, "tpot_ms": t.tpot_ms, "e2e_ms": t.e2e_ms}
        for t in timings
    ]


def good_share(samples: Sequence[dict[str, object]], spec: SLOSpec) -> float:
    """Requests within every latency limit the objective names (statistic limits taken per request)."""
    limits = dict(spec.per_request_ms)
    for aggregate in spec.aggregates:
        limits[aggregate.metric] = min(limits.get(aggregate.metric, math.inf), aggregate.limit_ms)
    good = sum(all(s[m] is None or s[m] <= limit for m, limit in limits.items()) for s in samples)  # type: ignore[operator]
    return good / len(samples) if samples else 0.0


class Planner:
    """One workload and objective over many layouts; each rate's requests and model stages are shared."""

    def __init__(
        self,
        profile: Profile,
        spec: SLOSpec,
        cost: CostModel,
        *,
        requests: int = 1000,
        arrivals: str = "poisson",
        seed: int = 0,
        max_running: int = 256,
    ) -> None:
        check_objective(spec)
        self.profile = profile
        self.spec = spec
        self.cost = cost
        self.requests = requests
        self.arrivals = arrivals
        self.seed = seed
        self.max_running = max_running
        self._models: dict[float, StagedModel] = {}

    def model(self, rate: float) -> StagedModel:
        if rate not in self._models:
            requests = planned_requests(
                self.profile, rate, self.requests, self.cost, arrivals=self.arrivals, seed=self.seed
            )
            self._models[rate] = StagedModel(
                requests, self.cost, max_running=self.max_running, seed=self.seed
            )
        return self._models[rate]

    def predict(self, layout: Layout, rate: float) -> Prediction:
        model = self.model(rate)
        load = model.offered_load(layout)
        if max(load.values()) >= 1:
            return Prediction(layout, rate, None, load=load)
        samples = samples_of(model.timings(layout)[int(len(model.requests) * WARMUP_SHARE) :])
        described = describe(s["ttft_ms"] for s in samples)  # type: ignore[misc]
        return Prediction(
            layout,
            rate,
            evaluate(samples, self.spec),
            ttft={k: float(described[k]) for k in ("p50", "p95", "p99", "mean")},  # type: ignore[arg-type]
            goodput=good_share(samples, self.spec),
            load=load,
        )

    def ramp(self, layout: Layout, plan: RampPlan) -> Prediction:
        """The highest of plan's step rates at which `layout` still meets the objective (steady state at
        each rate, not the load test's windows), with the prediction at that rate (or at the first step)."""
        best: Prediction | None = None
        for step in range(1, plan.max_steps + 1):
            prediction = self.predict(layout, plan.rate(step))
            if not prediction.meets:
                break
            best = prediction
        if best is None:
            return self.predict(layout, plan.rate(1))
        return replace(best, max_rate=best.rate)


def ranked(predictions: Iterable[Prediction], *, by_rate: bool = False) -> list[Prediction]:
    """Those that meet the objective first: (with a ramp) the highest rate, then the fewest GPUs, then the
    lowest objective statistic. Then those that miss it, closest first: lowest statistic, then the least
    overloaded."""

    def key(p: Prediction) -> tuple:
        if p.meets:
            return (0, -(p.max_rate or 0) if by_rate else 0, p.layout.gpus, p.objective_ms, p.layout)
        return (
            1,
            p.evaluation is None,
            p.objective_ms,
            max(p.load.values(), default=0),
            p.layout.gpus,
            p.layout,
        )

    return sorted(predictions, key=key)
