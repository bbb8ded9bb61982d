"""Servers that generate: plain (collocated), language-only, prefill and decode.

One request, by role:
  plain / language   [encode] -> prefill (GPU) -> first token -> decode batch (same GPU) -> rest
  prefill            [encode] -> prefill (GPU) -> publish KV for bootstrap_room -> 1-token answer
  decode             fetch KV from bootstrap_host:bootstrap_port -> KV transfer -> decode batch
`[encode]` runs on the encoders for a --language-only server, else on this server's own GPU before
the prefill (in one GPU turn, so a collocated server's images delay everybody's decode steps).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from http import HTTPStatus
from typing import NoReturn

import aiohttp
from aiohttp import web

from . import openai_api
from .config import Role, SimConfig
from .encoder_registry import EncoderRegistry, EncodeTimeouts, bootstrap_app, encode_remotely
from .errors import SimRequestError
from .gpu import DecodeBatch, Gpu
from .images import Prompt, read_prompt
from .kv import KvStore, fetch_kv
from .kv import bootstrap_app as kv_bootstrap_app
from .metrics import GenerationMetrics
from .openai_api import SSE_DONE, TOKEN_TEXT, ChatRequest, ChunkWriter, sse

log = logging.getLogger(__name__)

TIMINGS_HEADER = "x-sglang-sim-timings"
# Prefill-side timings a decode server copies from the KV record into its own.
PREFILL_FIELDS = ("images", "vision_tokens", "text_tokens", "queue_ms", "encode_ms", "encoders", "prefill_ms")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def no_embeddings() -> SimRequestError:
    """tokenizer_manager.py, _reject_missing_dispatched_encoder_embedding (zmq_to_tokenizer): refused
    before any output."""
    return SimRequestError(
        "The encoder did not return multimodal embeddings. "
        "The request was not run locally in language-only mode.",
        status=HTTPStatus.SERVICE_UNAVAILABLE,
    )


def die_of_dispatch_error(error: SimRequestError) -> NoReturn:
    """SGLang 0.5.23's language-only server when a request's encoder dispatch fails (a dead encoder still
    listed, an encoder error or timeout): the scheduler aborts the request in
    srt/managers/scheduler_components/request_receiver.py (_apply_mm_receiver), output_streamer.stream_output
    raises TypeError, the scheduler dies and SGLang kills its whole process tree (engine.py, the SIGQUIT
    handler: kill_process_tree). Every request on the server is lost."""
    log.critical(
        "Scheduler hit an exception: TypeError in output_streamer.stream_output via "
        "request_receiver._apply_mm_receiver, aborting a request whose encoder dispatch failed (%s). "
        "Received sigquit from a child process. It usually means the child failed.",
        error.message,
    )
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


class GenerationServer:
    def __init__(self, config: SimConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.role = config.role
        self.cost = config.cost
        self.settings = config.settings
        self.session = session
        self.tp_size = config.args.tp_size
        self.gpu = Gpu()
        self.decode = (
            None
            if self.role.is_prefill
            else DecodeBatch(self.gpu, self.cost, self.tp_size, config.max_running_requests)
        )
        self.encoders = (
            EncoderRegistry(config.args.encoder_urls, self.settings) if self.role.uses_encoders else None
        )
        self.kv_store = KvStore() if self.role.is_prefill else None
        # zmq_to_tokenizer: the tokenizer waits for the embeddings itself and refuses what it did not get;
        # zmq_to_scheduler (what `auto` is for Qwen2.5-VL) and mooncake: the scheduler waits, and aborts.
        self.embeddings_to_tokenizer = config.encoder_transfer_backend == "zmq_to_tokenizer"
        self.encode_timeouts = EncodeTimeouts(
            self.settings.encode_timeout, self.settings.encode_receive_timeout
        )
        self.prefill_waiting = 0
        self.prefilling = 0
        self.metrics = GenerationMetrics(config.model_name, self._running, self._queued)
        self._background: list[asyncio.Task] = []

    def _running(self) -> int:
        return self.prefilling + (len(self.decode.running) if self.decode else 0)

    def _queued(self) -> int:
        return self.prefill_waiting + (len(self.decode.waiting) if self.decode else 0)

    # Wiring into the process (server.py).
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.handle_chat)

    def extra_sites(self) -> list[tuple[str, web.Application, int]]:
        sites = []
        if self.encoders is not None:
            port = self.config.args.encoder_bootstrap_port
            sites.append(("encoder bootstrap", bootstrap_app(self.encoders), port))
        if self.kv_store is not None:
            app = kv_bootstrap_app(self.kv_store, max_wait=max(self.settings.kv_timeout, 1.0))
            sites.append(("disaggregation bootstrap", app, self.config.args.disaggregation_bootstrap_port))
        return sites

    def info(self) -> dict:
        info: dict = {"num_running_reqs": self._running(), "num_queue_reqs": self._queued()}
        if self.encoders is not None:
            info["encoder_urls"] = self.encoders.active()
            info["encoders"] = self.encoders.snapshot()
        if self.kv_store is not None:
            info["kv_rooms_waiting_for_decode"] = len(self.kv_store)
        return info

    async def on_ready(self) -> None:
        if self.encoders is not None:
            self._background.append(asyncio.create_task(self.encoders.run_health_checks(self.session)))

    async def shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.decode is not None:
            await self.decode.close()

    # The request.
    async def handle_chat(self, request: web.Request) -> web.StreamResponse:
        received = time.perf_counter()
        timings: dict = {"role": self.role.value, "server": self.config.url}
        chat: ChatRequest | None = None
        try:
            chat = openai_api.parse_chat_request(
                await self._read_json(request),
                served_model=self.config.model_name,
                default_max_tokens=self.settings.default_max_tokens,
                default_usage=self.config.args.stream_response_default_include_usage,
            )
            timings["request_id"] = chat.request_id
            if self.role.needs_bootstrap and not chat.has_bootstrap:
                raise SimRequestError(
                    f"this server runs with --disaggregation-mode {self.config.args.disaggregation_mode} and "
                    "only serves requests from the PD router: bootstrap_host and bootstrap_room are missing"
                )
            if self.role is Role.DECODE:
                prompt_tokens, tokens = await self._receive_kv(chat, timings)
            else:
                prompt_tokens, tokens = await self._prefill(chat, timings, received)
        except SimRequestError as exc:
            self.metrics.failed.inc()
            if self.kv_store is not None and chat is not None and chat.has_bootstrap:
                self.kv_store.publish(chat.bootstrap_room, {"error": exc.message})  # type: ignore[arg-type]
            log.warning("request failed (HTTP %d): %s", exc.status, exc.message)
            if chat is not None and chat.stream and exc.abort:
                return await self._stream_error(request, exc)
            return web.json_response(exc.body(), status=exc.status)
        return await self._respond(request, chat, prompt_tokens, tokens, timings, received)

    @staticmethod
    async def _stream_error(request: web.Request, error: SimRequestError) -> web.StreamResponse:
        """A streamed request that failed after validation: SGLang has already committed to a 200 stream
        (serving_chat.py, _handle_streaming_request waits for the first chunk, and an abort is that chunk)."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(openai_api.stream_error(error))
        await response.write(SSE_DONE)
        await response.write_eof()
        return response

    async def _read_json(self, request: web.Request) -> object:
        raw = await request.read()
        try:
            # A request with eight 1080p images is ~10 MB of JSON: parse it off the event loop.
            return json.loads(raw) if len(raw) < 256 * 1024 else await asyncio.to_thread(json.loads, raw)
        except ValueError as exc:
            raise SimRequestError(f"the request body is not valid JSON: {exc}") from None

    def _encoders_for(self, chat: ChatRequest, images: int) -> list[str]:
        """The encoders a request's images go to; none means this server encodes them itself, as a
        Qwen2.5-VL language-only server can: it loads the vision tower too (srt/models/qwen2_5_vl.py)."""
        if not images or self.encoders is None:
            return []
        if self.config.args.enable_adaptive_dispatch_to_encoder and images < self.settings.dispatch_min_items:
            return []  # tokenizer_manager.py, _should_dispatch_to_encoder: SGLANG_ENCODER_DISPATCH_MIN_ITEMS
        encoders = self.encoders.active()
        if not encoders and self.embeddings_to_tokenizer:
            raise no_embeddings()
        if not encoders:
            # receiver.py, MMReceiver._send_encode_request: slow, not failed.
            log.warning(
                "No encoder URLs available for request %s; processing without encoder disaggregation.",
                chat.request_id,
            )
        return encoders

    @asynccontextmanager
    async def _prefill_turn(self) -> AsyncIterator[float]:
        """The GPU for one prefill, counted as queued, then running."""
        self.prefill_waiting += 1
        waiting = True
        try:
            async with self.gpu.use() as waited:
                self.prefill_waiting -= 1
                waiting = False
                self.prefilling += 1
                try:
                    yield waited
                finally:
                    self.prefilling -= 1
        finally:
            if waiting:
                self.prefill_waiting -= 1

    async def _prefill(
        self, chat: ChatRequest, timings: dict, received: float
    ) -> tuple[int, AsyncIterator[None]]:
        prompt: Prompt = await asyncio.to_thread(read_prompt, chat.body["messages"], self.cost)
        prompt_tokens = prompt.prompt_tokens
        if prompt_tokens >= self.config.context_length:
            raise SimRequestError(
                f"the input ({prompt_tokens} tokens) is longer than the model's context length "
                f"({self.config.context_length} tokens)"
            )
        timings.update(
            images=len(prompt.images),
            vision_tokens=prompt.vision_tokens,
            text_tokens=prompt.text_tokens,
            prompt_tokens=prompt_tokens,
        )
        local_encode_ms = 0.0
        encoders = self._encoders_for(chat, len(prompt.images))
        if encoders:
            start = time.perf_counter()
            try:
                parts = await encode_remotely(
                    self.session, encoders, chat.request_id, list(prompt.images), self.encode_timeouts
                )
            except SimRequestError as error:
                if self.embeddings_to_tokenizer:
                    raise no_embeddings() from None
                if self.settings.dead_encoder_ends_server:
                    die_of_dispatch_error(error)
                raise
            timings["encode_ms"] = _ms(time.perf_counter() - start)
            timings["encoders"] = parts
            for part in parts:
                self.metrics.dispatched_images.labels(self.config.model_name, part["url"]).inc(part["images"])
        elif prompt.images:
            tokens = [i.vision_tokens for i in prompt.images]
            # The tokenizer loads the images before the scheduler sees the request (tokenizer_manager.py
            # _tokenize_one_request -> mm_processor.process_mm_data_async); the GPU is not held meanwhile.
            await asyncio.sleep(self.cost.image_load_ms(tokens) / 1000)
            local_encode_ms = self.cost.encode_batch_ms(tokens, self.tp_size)
            timings["encode_ms"] = round(local_encode_ms, 3)
            timings["encoders"] = []
        prefill_ms = self.cost.prefill_ms(prompt_tokens, self.tp_size)
        async with self._prefill_turn() as waited:
            await asyncio.sleep((local_encode_ms + prefill_ms) / 1000)
        timings["queue_ms"] = _ms(waited)
        timings["prefill_ms"] = round(prefill_ms, 3)
        self.metrics.prompt_tokens.inc(prompt_tokens)

        if self.kv_store is None:
            return prompt_tokens, self._first_then_decode(chat.max_tokens)
        prefill_timings = dict(timings, ttft_ms=_ms(time.perf_counter() - received))
        # The sender records the transfer (srt/disaggregation/prefill.py, metrics_reporter).
        self.metrics.kv_transfer_ms.observe(self.cost.kv_transfer_ms(prompt_tokens))
        self.kv_store.publish(
            chat.bootstrap_room,  # type: ignore[arg-type]
            {
                "prompt_tokens": prompt_tokens,
                "first_token": TOKEN_TEXT,
                "published_at": time.time(),
                "prefill": prefill_timings,
            },
        )
        return prompt_tokens, self._first_then_decode(1)

    async def _receive_kv(self, chat: ChatRequest, timings: dict) -> tuple[int, AsyncIterator[None]]:
        port = chat.bootstrap_port or self.config.args.disaggregation_bootstrap_port
        start = time.perf_counter()
        record = await fetch_kv(
            self.session,
            chat.bootstrap_host,  # type: ignore[arg-type]
            port,
            chat.bootstrap_room,  # type: ignore[arg-type]
            self.settings.kv_timeout,
            self.settings.route_retry_interval,
        )
        timings["kv_wait_ms"] = _ms(time.perf_counter() - start)
        prompt_tokens = int(record["prompt_tokens"])
        transfer_ms = self.cost.kv_transfer_ms(prompt_tokens)
        await asyncio.sleep(transfer_ms / 1000)
        prefill = record.get("prefill", {})
        timings.update({k: prefill[k] for k in PREFILL_FIELDS if k in prefill})
        timings.update(
            prompt_tokens=prompt_tokens,
            kv_transfer_ms=round(transfer_ms, 3),
            prefill={k: prefill.get(k) for k in ("server", "request_id", "ttft_ms")},
        )
        self.metrics.prompt_tokens.inc(prompt_tokens)
        return prompt_tokens, self._decode_tokens(chat.max_tokens)

    async def _decode_tokens(self, count: int) -> AsyncIterator[None]:
        assert self.decode is not None
        sequence = self.decode.add(count)
        try:
            async for _ in sequence:
                yield
        finally:
            self.decode.discard(sequence)

    async def _first_then_decode(self, count: int) -> AsyncIterator[None]:
        """The prefill's forward produced the first token; the decode batch makes the rest."""
        yield
        if count > 1:
            async with aclosing(self._decode_tokens(count - 1)) as rest:
                async for _ in rest:
                    yield

    async def _respond(
        self,
        request: web.Request,
        chat: ChatRequest,
        prompt_tokens: int,
        tokens: AsyncIterator[None],
        timings: dict,
        received: float,
    ) -> web.StreamResponse:
        chunks = ChunkWriter(chat)
        response: web.StreamResponse | None = None
        generated = 0
        last = received
        try:
            async with aclosing(tokens) as stream:  # type: ignore[type-var]
                async for _ in stream:
                    generated += 1
                    if generated == 1 and chat.stream:
                        response = web.StreamResponse(
                            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                        )
                        await response.prepare(request)
                        await response.write(sse(chunks.role()))
                    if response is not None:
                        await response.write(sse(chunks.content(TOKEN_TEXT)))
                    now = time.perf_counter()
                    if generated == 1:
                        timings["ttft_ms"] = _ms(now - received)
                        self.metrics.ttft.observe(now - received)
                    else:
                        self.metrics.itl.observe(now - last)
                    last = now
        except ConnectionResetError:
            log.info("client of %s went away after %d tokens", chat.request_id, generated)
            self.metrics.failed.inc()
            return response or web.Response(status=499)

        e2e = time.perf_counter() - received
        timings.update(completion_tokens=generated, e2e_ms=_ms(e2e))
        self.metrics.e2e.observe(e2e)
        self.metrics.generation_tokens.inc(generated)
        self.metrics.requests.inc()
        if response is None:
            body = openai_api.completion(chat, TOKEN_TEXT * generated, "length", prompt_tokens, generated)
            return web.json_response(body, headers={TIMINGS_HEADER: openai_api.dumps(timings)})
        try:
            if chat.include_usage:
                await response.write(sse(chunks.finish("length")))
                await response.write(sse(chunks.usage(prompt_tokens, generated, sim=timings)))
            else:
                await response.write(sse(chunks.finish("length", sim=timings)))
            await response.write(SSE_DONE)
            await response.write_eof()
        except ConnectionResetError:
            log.info("client of %s went away before the end of the stream", chat.request_id)
        return response
