"""A discrete-event model of a layout: the simulator's servers (sglang_epd/sim) without processes or
sleeps, spending time by the same cost model.

What it follows, stage by stage (each stage's input is fixed by the one before, so they run in order):
- router: round robin over the language servers, and independently over the decodes (the chart's planned
  values set `router.policy: round_robin`);
- encoders (epd, encoder+collocated): a language server sends a request's images to every encoder at once,
  counts as SGLang assigns them (sim/encoder_registry.py assign_counts, the shuffled larger shares); each
  encoder preprocesses a share off its GPU, then runs it in one forward, first come first served
  (sim/encoder.py, handle_encode), then the embeddings travel (not on its GPU);
- language servers: one prefill at a time on the GPU, whole, in the order requests became ready (their
  embeddings arrived, or their images loaded), plus the images' local encode when no encoder is used
  (sim/generation.py, _prefill);
- continuous-batching decode (sim/gpu.py, DecodeBatch): a step of `running` sequences takes
  cost.decode_step_ms(running, tp) and gives each a token; sequences that arrive join at the next step, up
  to max_running; on an unsplit server the steps queue for the same GPU as the prefills, in request order;
- PD: the decode starts after the prefill published the KV plus the KV transfer; its first token ends its
  first step. Unsplit: the prefill's forward makes the first token.
Not modelled, as in the simulator: HTTP, JSON and image parsing, encoder health probes, prefix caches.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..sim.cost import CostModel
from ..sim.encoder_registry import assign_counts
from .layouts import Layout
from .workload import PlannedRequest


@dataclass(frozen=True, slots=True)
class Timing:
    """One request's predicted times, in ms from its arrival."""

    ttft_ms: float
    e2e_ms: float
    tokens: int

    @property
    def tpot_ms(self) -> float | None:
        return (self.e2e_ms - self.ttft_ms) / (self.tokens - 1) if self.tokens > 1 else None


def encode_ready_ms(
    requests: Sequence[PlannedRequest], encoders: int, encoder_tp: int, cost: CostModel, seed: int = 0
) -> list[float]:
    """When each request's embeddings are all at its language server (its arrival when it has no image)."""
    rng = random.Random(f"shares/{seed}/{encoders}")
    # Each share asks for its encoder's GPU once preprocessed (off the GPU, in parallel with other
    # requests'), so shares of different requests can reach the GPU out of arrival order.
    asks: list[list[tuple[float, int, list[int]]]] = [[] for _ in range(encoders)]
    ready = [request.arrival_ms for request in requests]
    for position, request in enumerate(requests):
        start = 0
        counts = assign_counts(len(request.image_tokens), encoders, rng) if request.image_tokens else []
        for encoder, count in enumerate(counts):
            if not count:
                continue
            share = request.image_tokens[start : start + count]
            start += count
            asks[encoder].append((request.arrival_ms + cost.encoder_preprocess_ms(share), position, share))
    for shares in asks:
        free_at = 0.0
        for ask, position, share in sorted(shares, key=lambda s: s[:2]):
            free_at = max(free_at, ask) + cost.encode_batch_ms(share, encoder_tp)
            ready[position] = max(ready[position], free_at + cost.embed_transfer_ms(sum(share)))
    return ready


class GpuServer:
    """One GPU (TP group) that runs prefills whole and a continuous decode batch, first come first served.

    Decode steps are advanced many at a time while nothing can change the batch (no arrival, no finished
    sequence, no prefill waiting), so a run costs per request, not per token: a sequence is kept as the
    step count at which it finishes."""

    def __init__(self, cost: CostModel, tp: int, max_running: int) -> None:
        self.cost = cost
        self.tp = tp
        self.max_running = max(1, max_running)
        self.first_ms: dict[int, float] = {}
        self.finish_ms: dict[int, float] = {}
        self._step_ms: dict[int, float] = {}

    def step_ms(self, running: int) -> float:
        if running not in self._step_ms:
            self._step_ms[running] = self.cost.decode_step_ms(running, self.tp)
        return self._step_ms[running]

    def run(
        self,
        prefills: Sequence[tuple[float, float, int, int]] = (),
        joins: Sequence[tuple[float, int, int]] = (),
    ) -> None:
        """`prefills`: (ready, GPU ms, request, tokens to decode after the first), by ready time;
        `joins`: (time, request, tokens) sequences for the decode batch, by time. A prefill's first token
        is its end; a joined sequence's first token is the end of its first step."""
        first_ms, finish_ms, max_running = self.first_ms, self.finish_ms, self.max_running
        gpu_free = 0.0
        # (joined at, request, tokens, first token already made)
        pending: deque[tuple[float, int, int, bool]] = deque((t, i, n, False) for t, i, n in joins)
        waiting: deque[tuple[float, int, int, bool]] = deque()
        finishing: list[tuple[int, int]] = []  # heap of (step count at which it ends, request)
        steps_done = 0
        decode_asks: float | None = None  # when the decode loop next asks for the GPU; None: idle
        next_prefill = 0
        while next_prefill < len(prefills) or pending or waiting or finishing:
            if decode_asks is None and not finishing and not waiting and pending:
                decode_asks = pending[0][0]  # the loop wakes when a sequence is added
            prefill_ready = prefills[next_prefill][0] if next_prefill < len(prefills) else math.inf
            if decode_asks is not None and decode_asks <= prefill_ready:
                while pending and pending[0][0] <= decode_asks:
                    waiting.append(pending.popleft())
                admitted = []
                while waiting and len(finishing) < max_running:
                    _, index, tokens, first_made = waiting.popleft()
                    heapq.heappush(finishing, (steps_done + tokens, index))
                    if not first_made:
                        admitted.append(index)
                start = max(gpu_free, decode_asks)
                step = self.step_ms(len(finishing))
                steps = finishing[0][0] - steps_done
                if prefill_ready < math.inf:  # a prefill that asks before a later step goes first
                    steps = min(steps, 1 + max(0, math.floor((prefill_ready - start) / step)))
                if pending and len(finishing) < max_running:  # it joins at the first step asked after it
                    steps = min(steps, max(1, math.ceil((pending[0][0] - start) / step)))
                for index in admitted:
                    first_ms[index] = start + step
                steps_done += steps
                gpu_free = start + steps * step
                while finishing and finishing[0][0] == steps_done:
                    finish_ms[heapq.heappop(finishing)[1]] = gpu_free
                busy = finishing or waiting or (pending and pending[0][0] <= gpu_free)
                decode_asks = gpu_free if busy else None
            else:
                ready, busy_ms, index, decode_tokens = prefills[next_prefill]
                next_prefill += 1
                gpu_free = max(gpu_free, ready) + busy_ms
                first_ms[index] = gpu_free
                if decode_tokens > 0:  # joins this GPU's batch as the prefill ends (the latest join yet)
                    pending.append((gpu_free, index, decode_tokens, True))
                else:
                    finish_ms[index] = gpu_free


class StagedModel:
    """The requests through many layouts, each stage computed once for the layouts that share it: the
    encoders' result depends only on their count, the language servers' on theirs and the encoders'."""

    def __init__(
        self, requests: Sequence[PlannedRequest], cost: CostModel, *, max_running: int = 256, seed: int = 0
    ) -> None:
        self.requests = list(requests)
        self.cost = cost
        self.max_running = max_running
        self.seed = seed
        self._encoded: dict[tuple[int, int], list[float]] = {}
        self._language: dict[tuple, tuple[dict[int, float], dict[int, float]]] = {}
        # Each request's GPU time at TP 1; at TP n the cost model divides it by the TP speed-up.
        self.prefill_ms = [cost.prefill_ms(r.prompt_tokens) for r in self.requests]
        self.local_encode_ms = [cost.encode_batch_ms(r.image_tokens) for r in self.requests]
        # When a server that encodes itself has a request's images loaded (no encoder in the layout).
        self.loaded_ms = [r.arrival_ms + cost.image_load_ms(r.image_tokens) for r in self.requests]
        span = self.requests[-1].arrival_ms - self.requests[0].arrival_ms if len(self.requests) > 1 else 0.0
        self.span_ms = span or math.inf

    def offered_load(self, layout: Layout) -> dict[str, float]:
        """Each role's GPU-busy share if every request were served (>= 1: its queue grows without end). The
        decode's depends on its batching, so only the model knows it; it is left out here."""
        cost = self.cost
        prefill = sum(self.prefill_ms) / cost.language_speedup(layout.server_tp)
        load: dict[str, float] = {}
        if layout.uses_encoders:
            # One forward per encoder share: each share beyond the first adds the per-forward cost.
            forwards = sum(
                min(len(r.image_tokens), layout.encoders) - 1 for r in self.requests if r.image_tokens
            )
            encode = sum(self.local_encode_ms) + cost.encode_batch_fixed_ms * forwards
            load["E"] = encode / cost.vit_speedup(layout.encoder_tp) / (layout.encoders * self.span_ms)
        else:
            prefill += sum(self.local_encode_ms) / cost.vit_speedup(layout.server_tp)
        load["P" if layout.disaggregated else "S"] = prefill / (layout.servers * self.span_ms)
        return load

    def encoded(self, encoders: int, encoder_tp: int) -> list[float]:
        key = (encoders, encoder_tp)
        if key not in self._encoded:
            self._encoded[key] = encode_ready_ms(self.requests, encoders, encoder_tp, self.cost, self.seed)
        return self._encoded[key]

    def language(self, layout: Layout) -> tuple[dict[int, float], dict[int, float]]:
        """(first token or prefill end, finish) by request position, from the language servers."""
        key = (layout.uses_encoders, layout.disaggregated, layout.encoders, layout.encoder_tp,
               layout.servers, layout.server_tp)  # fmt: skip
        if key in self._language:
            return self._language[key]
        cost, tp = self.cost, layout.server_tp
        prefill_speedup, vit_speedup = cost.language_speedup(tp), cost.vit_speedup(tp)
        ready = self.encoded(layout.encoders, layout.encoder_tp) if layout.uses_encoders else self.loaded_ms
        by_server: list[list[tuple[float, float, int, int]]] = [[] for _ in range(layout.servers)]
        for position, request in enumerate(self.requests):
            busy = self.prefill_ms[position] / prefill_speedup
            if not layout.uses_encoders:
                busy += self.local_encode_ms[position] / vit_speedup
            decode_tokens = 0 if layout.disaggregated else request.max_tokens - 1
            by_server[position % layout.servers].append((ready[position], busy, position, decode_tokens))
        first_ms: dict[int, float] = {}
        finish_ms: dict[int, float] = {}
        for jobs in by_server:
            jobs.sort()
            server = GpuServer(cost, tp, self.max_running)
            server.run(prefills=jobs)
            first_ms.update(server.first_ms)
            finish_ms.update(server.finish_ms)
        self._language[key] = (first_ms, finish_ms)
        return first_ms, finish_ms

    def timings(self, layout: Layout) -> list[Timing]:
        """Every request's predicted TTFT and end through `layout`, in request order."""
        first_ms, finish_ms = self.language(layout)
        if layout.disaggregated:
            first_ms, finish_ms = self._decode(layout, prefill_end=first_ms)
        return [
            Timing(first_ms[i] - r.arrival_ms, finish_ms[i] - r.arrival_ms, r.max_tokens)
            for i, r in enumerate(self.requests)
        ]

    def _decode(
        self, layout: Layout, prefill_end: dict[int, float]
    ) -> tuple[dict[int, float], dict[int, float]]:
        by_decode: list[list[tuple[float, int, int]]] = [[] for _ in range(layout.decodes)]
        for position, request in enumerate(self.requests):
            joined = prefill_end[position] + self.cost.kv_transfer_ms(request.prompt_tokens)
            by_decode[position % layout.decodes].append((joined, position, request.max_tokens))
        first_ms: dict[int, float] = {}
        finish_ms: dict[int, float] = {}
        for joins in by_decode:
            joins.sort()
            decode = GpuServer(self.cost, layout.decode_tp, self.max_running)
            decode.run(joins=joins)
            first_ms.update(decode.first_ms)
            finish_ms.update(decode.finish_ms)
        return first_ms, finish_ms


def simulate(
    layout: Layout,
    requests: Sequence[PlannedRequest],
    cost: CostModel,
    *,
    max_running: int = 256,
    seed: int = 0,
) -> list[Timing]:
    """One layout's predicted timings (StagedModel for many layouts over the same requests)."""
    return StagedModel(requests, cost, max_running=max_running, seed=seed).timings(layout)
