"""A simulated GPU (one batch at a time) and continuous-batching decode on it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .cost import CostModel

log = logging.getLogger(__name__)


class Gpu:
    """Runs one batch at a time; waiters are served first come, first served (asyncio.Lock is FIFO)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self.waiting = 0
        self.busy = False

    async def released(self) -> None:
        """Wait until the batch now on the GPU is done (not for the ones queued behind it)."""
        await self._idle.wait()

    @asynccontextmanager
    async def use(self) -> AsyncIterator[float]:
        """Hold the GPU; yields the seconds spent waiting for it."""
        start = time.perf_counter()
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        self.busy = True
        self._idle.clear()
        try:
            yield time.perf_counter() - start
        finally:
            self.busy = False
            self._idle.set()
            self._lock.release()


class DecodeSequence:
    """One request in the decode batch; iterate it to receive one item per generated token."""

    _END = object()

    def __init__(self, tokens: int) -> None:
        self.remaining = tokens
        self.joined_at = time.perf_counter()
        self._tokens: asyncio.Queue[object] = asyncio.Queue()

    def emit(self) -> bool:
        """One token generated; True when this was the last one."""
        self.remaining -= 1
        self._tokens.put_nowait(None)
        if self.remaining <= 0:
            self._tokens.put_nowait(self._END)
            return True
        return False

    def __aiter__(self) -> AsyncIterator[None]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[None]:
        while (item := await self._tokens.get()) is not self._END:
            yield item


class DecodeBatch:
    """Continuous batching: each step takes cost.decode_step_ms(running) on the GPU and gives every
    running sequence one token. New sequences join at the next step, up to max_running at once."""

    def __init__(self, gpu: Gpu, cost: CostModel, tp_size: int, max_running: int) -> None:
        self.gpu = gpu
        self.cost = cost
        self.tp_size = tp_size
        self.max_running = max(1, max_running)
        self.running: list[DecodeSequence] = []
        self.waiting: deque[DecodeSequence] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def add(self, tokens: int) -> DecodeSequence:
        sequence = DecodeSequence(tokens)
        self.waiting.append(sequence)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="decode-batch")
        self._wake.set()
        return sequence

    def discard(self, sequence: DecodeSequence) -> None:
        """Drop a sequence (finished, or its client went away)."""
        if sequence in self.running:
            self.running.remove(sequence)
        elif sequence in self.waiting:
            self.waiting.remove(sequence)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            while self.waiting and len(self.running) < self.max_running:
                self.running.append(self.waiting.popleft())
            step_s = self.cost.decode_step_ms(len(self.running), self.tp_size) / 1000
            async with self.gpu.use():
                await asyncio.sleep(step_s)
            for sequence in list(self.running):
                if sequence.emit():
                    self.running.remove(sequence)
