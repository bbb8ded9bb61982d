"""The language-only server's view of its encoders: the EncoderBootstrapServer on
--encoder-bootstrap-port, the health-check loop, and the /encode fan-out of a request's images.

As in SGLang (facts/sglang-epd.md): static --encoder-urls are the initial set; encoders register and
unregister themselves; every SGLANG_SIM_ENCODER_HEALTH_INTERVAL seconds (SGLang: 10) each known encoder's
/health is checked, one failing 3 times in a row is evicted and checked on, and re-added when it recovers.
A request's images are split evenly and in order over all active encoders, in an order shuffled per
request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from .config import Settings
from .cost import split_in_order
from .errors import SimRequestError
from .images import ImageInfo

log = logging.getLogger(__name__)


def normalize_url(url: object) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"encoder url must be an http(s) URL, got {url!r}")
    return url.strip().rstrip("/")


@dataclass
class KnownEncoder:
    url: str
    source: str  # "static" (--encoder-urls) or "registered"
    failures: int = 0
    evicted: bool = False
    last_error: str | None = None

    def snapshot(self) -> dict:
        return {
            "url": self.url,
            "source": self.source,
            "evicted": self.evicted,
            "consecutive_failures": self.failures,
            "last_error": self.last_error,
        }


class EncoderRegistry:
    def __init__(self, static_urls: list[str], settings: Settings) -> None:
        self.settings = settings
        self._encoders: dict[str, KnownEncoder] = {}
        for url in static_urls:
            url = normalize_url(url)
            self._encoders[url] = KnownEncoder(url, "static")

    def active(self) -> list[str]:
        return [e.url for e in self._encoders.values() if not e.evicted]

    def snapshot(self) -> list[dict]:
        return [e.snapshot() for e in self._encoders.values()]

    def register(self, url: str) -> None:
        known = self._encoders.get(url)
        if known is None:
            self._encoders[url] = KnownEncoder(url, "registered")
            log.info("encoder %s registered", url)
        elif known.evicted or known.failures:
            known.evicted, known.failures = False, 0
            log.info("encoder %s registered again", url)

    def unregister(self, url: str) -> bool:
        removed = self._encoders.pop(url, None) is not None
        log.info("encoder %s unregistered%s", url, "" if removed else " (was not known)")
        return removed

    async def check_once(self, session: aiohttp.ClientSession) -> None:
        encoders = list(self._encoders.values())
        results = await asyncio.gather(*(self._healthy(session, e.url) for e in encoders))
        for encoder, error in zip(encoders, results, strict=True):
            if self._encoders.get(encoder.url) is not encoder:
                continue  # unregistered meanwhile
            if error is None:
                if encoder.evicted:
                    log.info("encoder %s is healthy again: re-added", encoder.url)
                encoder.failures, encoder.evicted, encoder.last_error = 0, False, None
                continue
            encoder.failures += 1
            encoder.last_error = error
            if not encoder.evicted and encoder.failures >= self.settings.encoder_evict_after:
                encoder.evicted = True
                log.warning(
                    "encoder %s failed %d health checks (%s): evicted", encoder.url, encoder.failures, error
                )

    async def _healthy(self, session: aiohttp.ClientSession, url: str) -> str | None:
        try:
            async with session.get(
                f"{url}/health", timeout=aiohttp.ClientTimeout(total=self.settings.encoder_health_timeout)
            ) as response:
                return None if response.status == 200 else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return repr(exc)

    async def run_health_checks(self, session: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(self.settings.encoder_health_interval)
            await self.check_once(session)


def bootstrap_app(registry: EncoderRegistry) -> web.Application:
    """The EncoderBootstrapServer's HTTP API, with SGLang 0.5.23's answers (srt/disaggregation/encoder/
    receiver.py, EncoderBootstrapServer): "OK" to register and unregister (idempotent, an unknown URL
    too), 400 {"error": ...} without a url, {"encoder_urls": [...]} from the list."""

    async def read_url(request: web.Request) -> str:
        try:
            return normalize_url((await request.json()).get("url"))
        except (ValueError, AttributeError) as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"Missing or empty 'url' field ({exc})"}),
                content_type="application/json",
            ) from None

    async def register(request: web.Request) -> web.Response:
        registry.register(await read_url(request))
        return web.Response(text="OK")

    async def unregister(request: web.Request) -> web.Response:
        registry.unregister(await read_url(request))
        return web.Response(text="OK")

    async def list_urls(_: web.Request) -> web.Response:
        return web.json_response({"encoder_urls": registry.active()})

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_post("/register_encoder_url", register)
    app.router.add_delete("/unregister_encoder_url", unregister)
    app.router.add_get("/list_encoder_urls", list_urls)
    app.router.add_get("/health", health)
    return app


async def _encode_part(
    session: aiohttp.ClientSession,
    url: str,
    request_id: str,
    part: int,
    parts: int,
    images: list[ImageInfo],
    timeout: float,
) -> dict:
    body = {"rid": request_id, "part_index": part, "num_parts": parts, "images": [i.wire() for i in images]}
    start = time.perf_counter()
    try:
        async with session.post(
            f"{url}/encode", json=body, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status != 200:
                detail = (await response.text())[:300]
                raise SimRequestError(f"encoder {url} failed: HTTP {response.status} {detail}", status=500)
            result = await response.json()
    except TimeoutError:
        raise SimRequestError(
            f"encoder {url} did not answer /encode within {timeout:g} s (SGLANG_SIM_ENCODE_TIMEOUT)",
            status=500,
        ) from None
    except aiohttp.ClientError as exc:
        raise SimRequestError(f"encoder {url} failed: {exc!r}", status=500) from None
    timings = result.get("timings", {})
    return {
        "url": url,
        "part_index": part,
        "images": len(images),
        "image_indices": [i.index for i in images],
        "vision_tokens": result.get("vision_tokens", 0),
        "cache_hits": sum(1 for i in result.get("images", []) if i.get("cache_hit")),
        "queue_ms": timings.get("queue_ms"),
        "forward_ms": timings.get("forward_ms"),
        "transfer_ms": timings.get("transfer_ms"),
        "server_ms": timings.get("e2e_ms"),
        "rtt_ms": round((time.perf_counter() - start) * 1000, 3),
    }


async def encode_remotely(
    session: aiohttp.ClientSession,
    encoders: list[str],
    request_id: str,
    images: list[ImageInfo],
    timeout: float,
) -> list[dict]:
    """POST each encoder its share of `images`, all at once; one failure fails the request."""
    if not encoders:
        raise SimRequestError(
            "no encoder is known to this --language-only server, so it would process the images itself, "
            "but it has no vision weights: start encoders with --encoder-register-urls pointing at this "
            "server's encoder bootstrap port, or pass --encoder-urls",
            status=500,
        )
    order = list(encoders)
    random.shuffle(order)
    shares = split_in_order(images, len(order))
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_encode_part(session, url, request_id, part, len(shares), share, timeout))
                for part, (url, share) in enumerate(zip(order, shares, strict=False))
            ]
    except ExceptionGroup as failures:
        first = failures.exceptions[0]
        if isinstance(first, SimRequestError):
            raise first from None
        raise
    return [task.result() for task in tasks]
