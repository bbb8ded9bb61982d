"""The encoder role (--encoder-only): POST /encode on one simulated GPU, the prefix mm cache, and
self-registration with language-only servers (--encoder-register-urls).

/encode body (the simulator's own; SGLang sends the images themselves):
    {"rid": str, "part_index": int, "num_parts": int,
     "images": [{"index": int, "width": int, "height": int, "hash": str}, ...]}
answer:
    {"rid", "part_index", "encoder": url, "vision_tokens": int,
     "images": [{"index", "hash", "vision_tokens", "cache_hit"}, ...],
     "timings": {"queue_ms", "forward_ms", "transfer_ms", "e2e_ms"}}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import aiohttp
from aiohttp import web

from .config import SimConfig
from .gpu import Gpu
from .metrics import EncoderMetrics

log = logging.getLogger(__name__)

# srt/disaggregation/encoder/http_server.py, _register_encoder_url_with_bootstrap
REGISTER_ATTEMPTS = 30
REGISTER_TIMEOUT_S = 5.0


class EmbeddingCache:
    """LRU of image hashes, sized like SGLang's (SGLANG_VLM_CACHE_SIZE_MB of embeddings)."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.used_bytes = 0
        self._entries: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def hit(self, key: str) -> bool:
        if key in self._entries:
            self._entries.move_to_end(key)
            return True
        return False

    def put(self, key: str, size: int) -> int:
        """Add an entry; returns how many older ones it evicted."""
        if size > self.capacity_bytes or key in self._entries:
            return 0
        self._entries[key] = size
        self.used_bytes += size
        evictions = 0
        while self.used_bytes > self.capacity_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.used_bytes -= evicted
            evictions += 1
        return evictions


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class EncoderServer:
    def __init__(self, config: SimConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.cost = config.cost
        self.session = session
        self.gpu = Gpu()
        self.metrics = EncoderMetrics(config.model_name)
        settings = config.settings
        self.cache = (
            EmbeddingCache(int(settings.vlm_cache_size_mb * 1024 * 1024))
            if config.args.enable_prefix_mm_cache
            else None
        )
        self._registered: list[str] = []
        self._registration: list[asyncio.Task] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/encode", self.handle_encode)

    def extra_sites(self) -> list[tuple[str, web.Application, int]]:
        return []

    def info(self) -> dict:
        return {
            "registered_with": list(self._registered),
            "prefix_mm_cache_entries": None if self.cache is None else len(self.cache),
        }

    async def handle_encode(self, request: web.Request) -> web.Response:
        received = time.perf_counter()
        try:
            body = await request.json()
            images = [
                (int(i["index"]), int(i["width"]), int(i["height"]), str(i["hash"])) for i in body["images"]
            ]
            tokens = [self.cost.vision_tokens(w, h) for _, w, h, _ in images]
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad /encode body: {exc!r}"}, status=400)
        metrics = self.metrics
        metrics.of(metrics.requests_received).inc()
        metrics.of(metrics.items_per_request).observe(len(images))
        metrics.of(metrics.items_per_batch).observe(len(images))  # one request per batch here
        # Every image of the share is loaded and preprocessed, cached or not, before the forward and off
        # its GPU (disaggregation/encoder/server.py MMEncoder.batch_encode -> _prepare_encode_context).
        preprocess_ms = self.cost.encoder_preprocess_ms(tokens)
        await asyncio.sleep(preprocess_ms / 1000)
        hits: list[bool] = []
        async with self.gpu.use() as waited:
            for _, _, _, key in images:
                hits.append(self.cache is not None and self.cache.hit(key))
            misses = [n for n, hit in zip(tokens, hits, strict=True) if not hit]
            forward_ms = self.cost.encode_batch_ms(misses, self.config.args.tp_size)
            await asyncio.sleep(forward_ms / 1000)
        transfer_ms = self.cost.embed_transfer_ms(sum(tokens))
        await asyncio.sleep(transfer_ms / 1000)
        e2e = time.perf_counter() - received

        if self.cache is not None:
            evictions = sum(
                self.cache.put(key, n * self.config.settings.embed_bytes_per_token)
                for (_, _, _, key), n, hit in zip(images, tokens, hits, strict=True)
                if not hit
            )
            hit_tokens = sum(n for n, hit in zip(tokens, hits, strict=True) if hit)
            metrics.of(metrics.cache_hit_tokens).inc(hit_tokens)
            metrics.of(metrics.cache_total_tokens).inc(sum(tokens))
            metrics.of(metrics.cache_hit_files).inc(sum(hits))
            metrics.of(metrics.cache_total_files).inc(len(images))
            metrics.of(metrics.cache_evictions).inc(evictions)
            metrics.cache_size_mb.labels(**metrics.labels).set(self.cache.used_bytes / (1024 * 1024))
            metrics.cache_entries.labels(**metrics.labels).set(len(self.cache))
        metrics.of(metrics.queue_wait).observe(waited)
        metrics.of(metrics.forward).observe(forward_ms / 1000)
        metrics.of(metrics.transfer, backend=self.config.encoder_transfer_backend).observe(transfer_ms / 1000)
        metrics.of(metrics.e2e).observe(e2e)
        metrics.of(metrics.requests, status="success").inc()
        return web.json_response(
            {
                "rid": body.get("rid"),
                "part_index": body.get("part_index"),
                "encoder": self.config.url,
                "vision_tokens": sum(tokens),
                "images": [
                    {"index": index, "hash": key, "vision_tokens": n, "cache_hit": hit}
                    for (index, _, _, key), n, hit in zip(images, tokens, hits, strict=True)
                ],
                "timings": {
                    "preprocess_ms": round(preprocess_ms, 3),
                    "queue_ms": _ms(waited),
                    "forward_ms": round(forward_ms, 3),
                    "transfer_ms": round(transfer_ms, 3),
                    "e2e_ms": _ms(e2e),
                },
            }
        )

    async def health(self) -> bool:
        """SGLang's encoder /health (srt/disaggregation/encoder/http_server.py, health_generate): a dummy
        encode of a tiny image under the encoder's dispatch lock, so a probe waits for the batch on the
        GPU; healthy at once when traffic is pending once it has the lock (has_pending_embeddings)."""
        if self.gpu.busy or self.gpu.waiting:
            await self.gpu.released()
            return True
        async with self.gpu.use():
            dummy = [self.cost.vision_tokens(32, 32)]
            await asyncio.sleep(self.cost.encode_batch_ms(dummy, self.config.args.tp_size) / 1000)
        return True

    # SGLang's own registration (--encoder-register-urls), in SGLang's order: launch_server starts it after
    # the model loaded and BEFORE uvicorn listens; it never registers again once it succeeded or gave up.
    def start_registration(self) -> None:
        for url in self.config.args.encoder_register_urls:
            self._registration.append(asyncio.create_task(self._register(url.rstrip("/"))))

    async def _register(self, bootstrap: str) -> None:
        settings = self.config.settings
        body = {"url": self.config.url}
        last_error = ""
        for attempt in range(1, REGISTER_ATTEMPTS + 1):
            try:
                async with self.session.post(
                    f"{bootstrap}/register_encoder_url",
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=REGISTER_TIMEOUT_S),
                ) as response:
                    if response.status == 200:
                        self._registered.append(bootstrap)
                        log.info("registered %s with %s (attempt %d)", self.config.url, bootstrap, attempt)
                        return
                    last_error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = repr(exc)
            if attempt < REGISTER_ATTEMPTS:
                log.info(
                    "registering with %s failed (attempt %d/%d: %s); retrying in %g s",
                    bootstrap,
                    attempt,
                    REGISTER_ATTEMPTS,
                    last_error,
                    settings.register_interval,
                )
                await asyncio.sleep(settings.register_interval)
        log.error(
            "Giving up on bootstrap %s after %d attempts (%s): this encoder never registers there again",
            bootstrap,
            REGISTER_ATTEMPTS,
            last_error,
        )

    async def shutdown(self) -> None:
        for task in self._registration:
            task.cancel()
        await asyncio.gather(*self._registration, return_exceptions=True)

    async def unregister_everywhere(self) -> None:
        """SGLang's atexit hook (_unregister_encoder_url_from_bootstrap): every --encoder-register-urls
        entry, 2 s each. It runs after uvicorn stopped, on a clean exit (SIGINT) only: uvicorn re-raises
        SIGTERM, which ends the process before atexit."""
        await asyncio.gather(
            *(self._unregister(url.rstrip("/")) for url in self.config.args.encoder_register_urls)
        )

    async def _unregister(self, bootstrap: str) -> None:
        try:
            async with self.session.delete(
                f"{bootstrap}/unregister_encoder_url",
                json={"url": self.config.url},
                timeout=aiohttp.ClientTimeout(total=2),
            ) as response:
                log.info("unregistered %s from %s: HTTP %d", self.config.url, bootstrap, response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not unregister %s from %s: %r", self.config.url, bootstrap, exc)
