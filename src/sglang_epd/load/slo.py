"""Service-level objectives, their evaluation over raw samples, and the run's verdict and exit code.

`--slo` takes `KEY=VALUE` items (comma-separated and/or repeated):

* `ttft_p95_ms=2000`: a statistic of a latency over the successful requests. Metric `ttft`, `ttfb`,
  `tpot`, `itl` or `e2e`; statistic `p50`, `p90`, `p95`, `p99`, `p99.9` (or `p999`), `mean` or `max`.
* `ttft_ms=3000`, `tpot_ms=50`, `e2e_ms=20000` (also `ttfb_ms`): per-request limits. A request is *good*
  when it succeeded and met every one; goodput is the share of good requests.
* `goodput_min=0.9`: the least goodput that passes (needs at least one per-request limit).
* `error_rate_max=0.01`: the largest share of failed requests that passes (default 0: any error fails).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from . import samples as kinds
from .stats import PERCENTILES, Sample, counted, describe, percentile_key, values_of

METRICS = ("ttft", "ttfb", "tpot", "itl", "e2e")
PER_REQUEST_METRICS = ("ttft", "ttfb", "tpot", "e2e")
_AGGREGATE = re.compile(r"(?P<metric>[a-z0-9]+)_(?P<stat>p[0-9.]+|mean|max)_ms")
_PER_REQUEST = re.compile(r"(?P<metric>[a-z0-9]+)_ms")


class ExitCode(IntEnum):
    PASSED = 0
    SLO_MISSED = 3
    ERRORS = 4
    COULD_NOT_RUN = 5


EXIT_CODES = {
    "passed": ExitCode.PASSED,
    "slo_missed": ExitCode.SLO_MISSED,
    "errors": ExitCode.ERRORS,
    "could_not_run": ExitCode.COULD_NOT_RUN,
}


class SLOError(ValueError):
    """An --slo item that cannot be understood; the message names it and says what is accepted."""


@dataclass(frozen=True)
class AggregateSLO:
    key: str  # as written, e.g. ttft_p95_ms
    metric: str  # ttft_ms
    stat: str  # p95, mean, max
    limit_ms: float


@dataclass(frozen=True)
class SLOSpec:
    aggregates: tuple[AggregateSLO, ...] = ()
    per_request_ms: dict[str, float] = field(default_factory=dict)  # {"ttft_ms": 3000}
    goodput_min: float | None = None
    error_rate_max: float = 0.0

    @classmethod
    def parse(cls, items: Iterable[str]) -> SLOSpec:
        aggregates: list[AggregateSLO] = []
        per_request: dict[str, float] = {}
        goodput_min: float | None = None
        error_rate_max = 0.0
        for raw in (part.strip() for item in items for part in str(item).split(",")):
            if not raw:
                continue
            key, sep, text = raw.partition("=")
            key = key.strip().lower()
            if not sep:
                raise SLOError(f"--slo {raw!r}: expected KEY=VALUE, e.g. ttft_p95_ms=2000")
            value = _number(raw, text)
            if key in ("goodput_min", "error_rate_max"):
                if not 0 <= value <= 1:
                    raise SLOError(f"--slo {raw!r}: {key} is a fraction from 0 to 1 (0.9 for 90%)")
                if key == "goodput_min":
                    goodput_min = value
                else:
                    error_rate_max = value
            elif match := _AGGREGATE.fullmatch(key):
                aggregates.append(
                    AggregateSLO(
                        key, _metric(raw, match["metric"], METRICS), _stat(raw, match["stat"]), value
                    )
                )
            elif match := _PER_REQUEST.fullmatch(key):
                per_request[f"{_metric(raw, match['metric'], PER_REQUEST_METRICS)}"] = value
            else:
                raise SLOError(
                    f"--slo {raw!r}: unknown key {key!r}. Use METRIC_STAT_ms (e.g. ttft_p95_ms, tpot_p99_ms, "
                    "e2e_mean_ms), METRIC_ms for a per-request limit (ttft_ms, tpot_ms, e2e_ms), "
                    "goodput_min or error_rate_max"
                )
        if goodput_min is not None and not per_request:
            raise SLOError(
                "--slo goodput_min needs at least one per-request limit (ttft_ms, ttfb_ms, tpot_ms or "
                "e2e_ms) that defines a good request"
            )
        return cls(tuple(aggregates), per_request, goodput_min, error_rate_max)

    def describe(self) -> list[str]:
        items = [f"{a.key}={a.limit_ms:g}" for a in self.aggregates]
        items += [f"{metric}={limit:g}" for metric, limit in self.per_request_ms.items()]
        if self.goodput_min is not None:
            items.append(f"goodput_min={self.goodput_min:g}")
        items.append(f"error_rate_max={self.error_rate_max:g}")
        return items


def _number(raw: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SLOError(f"--slo {raw!r}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SLOError(f"--slo {raw!r}: the value must be a non-negative number")
    return value


def _metric(raw: str, name: str, allowed: Sequence[str]) -> str:
    if name not in allowed:
        raise SLOError(f"--slo {raw!r}: unknown metric {name!r}; known: {', '.join(allowed)}")
    return f"{name}_ms"


def _stat(raw: str, stat: str) -> str:
    if stat in ("mean", "max"):
        return stat
    number = "99.9" if stat == "p999" else stat[1:]
    try:
        p = float(number)
    except ValueError:
        p = -1.0
    if p not in PERCENTILES:
        known = ", ".join(percentile_key(p) for p in PERCENTILES)
        raise SLOError(f"--slo {raw!r}: unknown percentile {stat!r}; known: {known}, mean, max")
    return percentile_key(p)


@dataclass(frozen=True)
class Check:
    key: str
    limit: float
    actual: float | None  # None: nothing to measure (no successful request)
    passed: bool
    kind: str  # "latency", "goodput" or "errors"


@dataclass(frozen=True)
class Evaluation:
    requests: int  # completed requests that count, plus pending ones
    ok: int
    errors: int
    pending: int
    goodput: float | None
    checks: tuple[Check, ...]
    error_check: Check
    errors_by_kind: dict[str, int]
    error_examples: dict[str, str]

    @property
    def slo_checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def passed(self) -> bool:
        return self.slo_checks_passed and self.error_check.passed


def is_good(sample: Sample, per_request_ms: dict[str, float]) -> bool:
    """Succeeded and met every per-request limit (a metric the request does not have, like the TPOT of a
    one-token answer, does not count against it)."""
    if not sample.get("ok"):
        return False
    return all(
        sample.get(metric) is None or sample[metric] <= limit for metric, limit in per_request_ms.items()
    )


def evaluate(all_samples: Iterable[Sample], spec: SLOSpec, *, pending: int = 0) -> Evaluation:
    """Check `spec` over the samples. `pending` requests (started, not finished when a ramp step is judged)
    count as not good, and as infinitely slow in the latency percentiles."""
    samples = counted(all_samples)
    ok = [s for s in samples if s.get("ok")]
    total = len(samples) + pending
    checks = []
    for slo in spec.aggregates:
        values = values_of(ok, slo.metric) + [math.inf] * (pending if slo.metric != "itl_ms" else 0)
        actual = describe(values).get(slo.stat) if values else None
        checks.append(
            Check(slo.key, slo.limit_ms, actual, actual is not None and actual <= slo.limit_ms, "latency")
        )
    goodput = None
    if spec.per_request_ms:
        goodput = sum(is_good(s, spec.per_request_ms) for s in ok) / total if total else None
        if spec.goodput_min is not None:
            passed = goodput is not None and goodput >= spec.goodput_min
            checks.append(Check("goodput_min", spec.goodput_min, goodput, passed, "goodput"))
    errors = [s for s in samples if not s.get("ok")]
    error_rate = len(errors) / len(samples) if samples else None
    error_check = Check(
        "error_rate_max",
        spec.error_rate_max,
        error_rate,
        error_rate is None or error_rate <= spec.error_rate_max,
        "errors",
    )
    by_kind: dict[str, int] = {}
    examples: dict[str, str] = {}
    for sample in errors:
        kind = sample.get("error") or "unknown"
        by_kind[kind] = by_kind.get(kind, 0) + 1
        examples.setdefault(kind, sample.get("error_detail") or "")
    return Evaluation(
        total, len(ok), len(errors), pending, goodput, tuple(checks), error_check, by_kind, examples
    )


@dataclass(frozen=True)
class Verdict:
    status: str  # passed, slo_missed, errors, could_not_run
    exit_code: ExitCode
    reasons: tuple[str, ...]


def decide(evaluation: Evaluation | None, *, fatal: str | None = None) -> Verdict:
    """The run's outcome, most severe first: could not run, errors above the allowed rate, SLO missed."""
    if fatal:
        return Verdict("could_not_run", ExitCode.COULD_NOT_RUN, (fatal,))
    if evaluation is None or evaluation.requests == 0:
        return Verdict("could_not_run", ExitCode.COULD_NOT_RUN, ("no request was completed",))
    if evaluation.ok == 0 and set(evaluation.errors_by_kind) == {kinds.CONNECT}:
        detail = evaluation.error_examples[kinds.CONNECT]
        return Verdict("could_not_run", ExitCode.COULD_NOT_RUN, (f"no request could connect: {detail}",))
    if not evaluation.error_check.passed:
        rate = evaluation.error_check.actual or 0
        kinds_text = ", ".join(f"{k}: {n}" for k, n in evaluation.errors_by_kind.items())
        example = next(iter(evaluation.error_examples.values()), "")
        reason = (
            f"{evaluation.errors} of {evaluation.requests} requests failed ({rate:.1%}, allowed "
            f"{evaluation.error_check.limit:.1%}; {kinds_text}). First: {example}"
        )
        return Verdict("errors", ExitCode.ERRORS, (reason,))
    missed = [c for c in evaluation.checks if not c.passed]
    if missed:
        return Verdict("slo_missed", ExitCode.SLO_MISSED, tuple(_missed(c) for c in missed))
    return Verdict("passed", ExitCode.PASSED, ())


def _missed(check: Check) -> str:
    if check.actual is None:
        return f"{check.key}: no successful request to measure"
    if check.kind == "goodput":
        return f"goodput {check.actual:.1%} < {check.limit:.1%}"
    return f"{check.key}: {check.actual:.1f} ms > {check.limit:g} ms"
