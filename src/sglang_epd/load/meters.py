"""What the load generator itself costs and how late it can be: CPU time and gevent loop lag."""

from __future__ import annotations

import array
import resource
import time
from typing import Any

import gevent

from .stats import describe


class CpuMeter:
    """This process's CPU time (user and kernel) while it generated load."""

    def __init__(self) -> None:
        self._start = (0.0, 0.0, 0.0)
        self.user_s = self.system_s = self.wall_s = 0.0

    @staticmethod
    def _now() -> tuple[float, float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime, usage.ru_stime, time.perf_counter()

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> None:
        now = self._now()
        self.user_s, self.system_s, self.wall_s = (b - a for a, b in zip(self._start, now, strict=True))

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


class LoopLagMonitor:
    """How late the gevent loop wakes a sleeping greenlet: the most a response's arrival time can be
    noticed late by this client, reported next to every TTFT."""

    interval_s = 0.01

    def __init__(self) -> None:
        self.lags_ms = array.array("d")
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self.stop()
        self.lags_ms = array.array("d")
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            before = time.perf_counter()
            gevent.sleep(self.interval_s)
            self.lags_ms.append((time.perf_counter() - before - self.interval_s) * 1000)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def report(self) -> dict[str, Any]:
        described = describe(self.lags_ms)
        return {key: described.get(key) for key in ("count", "p50", "p99", "max")}
