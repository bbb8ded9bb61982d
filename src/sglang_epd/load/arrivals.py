"""Open-loop arrival times: when requests are due, independent of how fast the server answers.

A closed-loop user sends its next request when the previous one finished, so a slow server slows the
arrivals and hides its own queueing. An open-loop scheduler instead plans arrival times from the rate
alone and starts each request on its own greenlet at its time; a late client shows up as schedule lag
(start - planned), recorded per request and never folded into TTFT.
"""

from __future__ import annotations

import random

ARRIVAL_KINDS = ("poisson", "uniform")


class ArrivalSchedule:
    """Planned times (in the clock of `start`) at `rate` per second: exponential gaps (`poisson`) or
    equal gaps (`uniform`, with a random phase so that several schedulers do not fire together)."""

    def __init__(self, rate: float, kind: str, rng: random.Random, start: float) -> None:
        if rate <= 0:
            raise ValueError(f"an arrival rate must be positive, got {rate}")
        if kind not in ARRIVAL_KINDS:
            raise ValueError(f"arrivals must be one of {', '.join(ARRIVAL_KINDS)}, got {kind!r}")
        self.rate = rate
        self.kind = kind
        self._rng = rng
        self._next = start + (rng.uniform(0, 1 / rate) if kind == "uniform" else rng.expovariate(rate))

    def next(self) -> float:
        """The next planned arrival time; plans never move because the client was late."""
        due = self._next
        self._next += self._rng.expovariate(self.rate) if self.kind == "poisson" else 1 / self.rate
        return due
