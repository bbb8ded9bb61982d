"""The language-only server's view of its encoders: the EncoderBootstrapServer on
--encoder-bootstrap-port, its health-check loop, and the fan-out of a request's images.

Mirrors SGLang 0.5.23, srt/disaggregation/encoder/receiver.py, EncoderBootstrapServer (held equal by
tests/fidelity/test_bootstrap_server.py, which runs both): one list of active URLs, pre-filled with
--encoder-urls and shared with the dispatch; register/unregister are idempotent; every
SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL seconds (10; 0 disables) every active and evicted URL's
/health is probed with a _TIMEOUT (2 s) budget; 3 failures in a row evict a URL; an evicted URL that
answers again comes back; one evicted for _EVICTED_TTL seconds (600; 0 keeps it) is dropped for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import aiohttp
from aiohttp import web

from .config import Settings
from .errors import SimRequestError
from .images import ImageInfo

log = logging.getLogger(__name__)

HEALTH_FAIL_THRESHOLD = 3  # receiver.py, EncoderBootstrapServer.__init__: _health_fail_threshold
MISSING_URL = "Missing or empty 'url' field"  # receiver.py, EncoderBootstrapServer._register


class EncoderRegistry:
    def __init__(
        self, static_urls: list[str], settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._urls: list[str] = list(static_urls)
        self._fail_counts: dict[str, int] = {}
        self._evicted: dict[str, float] = {}  # url -> when it was evicted

    def active(self) -> list[str]:
        return list(self._urls)

    def snapshot(self) -> list[dict]:
        known = dict.fromkeys(self._urls + list(self._evicted))
        return [
            {
                "url": url,
                "evicted": url in self._evicted,
                "consecutive_failures": self._fail_counts.get(url, 0),
            }
            for url in known
        ]

    def register(self, url: str) -> bool:
        self._fail_counts.pop(url, None)
        self._evicted.pop(url, None)
        if url in self._urls:
            return False
        self._urls.append(url)
        log.info("Registered encoder URL: %s", url)
        return True

    def unregister(self, url: str) -> bool:
        """An explicit unregister also forgets an evicted URL, so that it does not come back."""
        removed = url in self._urls or url in self._evicted
        if url in self._urls:
            self._urls.remove(url)
        self._evicted.pop(url, None)
        self._fail_counts.pop(url, None)
        if removed:
            log.info("Unregistered encoder URL: %s", url)
        return removed

    async def check_once(self, session: aiohttp.ClientSession) -> None:
        """One pass of the health-check loop (the part after its sleep)."""
        now = self._clock()
        ttl = self.settings.encoder_evicted_ttl
        expired = [url for url, at in self._evicted.items() if ttl > 0 and now - at >= ttl]
        for url in expired:
            self._evicted.pop(url, None)
            self._fail_counts.pop(url, None)
        if expired:
            log.warning(
                "Health check permanently dropped %d encoder(s) after %gs unhealthy: %s",
                len(expired),
                ttl,
                expired,
            )
        candidates = list(dict.fromkeys(self._urls + list(self._evicted)))
        if not candidates:
            return
        results = await asyncio.gather(*(self._probe(session, url) for url in candidates))
        for url, ok in zip(candidates, results, strict=True):
            if ok:
                self._fail_counts.pop(url, None)
                if url in self._evicted:
                    del self._evicted[url]
                    if url not in self._urls:
                        self._urls.append(url)
                    log.info("Health check revived encoder %s", url)
                continue
            if url in self._evicted:
                continue
            count = self._fail_counts.get(url, 0) + 1
            self._fail_counts[url] = count
            if count >= HEALTH_FAIL_THRESHOLD:
                if url in self._urls:
                    self._urls.remove(url)
                self._evicted[url] = now
                self._fail_counts.pop(url, None)
                log.warning("Health check evicted encoder %s after %d consecutive failures", url, count)

    async def _probe(self, session: aiohttp.ClientSession, url: str) -> bool:
        try:
            async with session.get(
                f"{url}/health", timeout=aiohttp.ClientTimeout(total=self.settings.encoder_health_timeout)
            ) as response:
                return response.status == 200
        except Exception:
            return False

    async def run_health_checks(self, session: aiohttp.ClientSession) -> None:
        if self.settings.encoder_health_interval <= 0:
            return
        while True:
            await asyncio.sleep(self.settings.encoder_health_interval)
            await self.check_once(session)


def bootstrap_app(registry: EncoderRegistry) -> web.Application:
    """The EncoderBootstrapServer's HTTP API with SGLang's answers: "OK" to register and unregister
    (idempotent, an unknown URL too), 400 {"error": ...} without a url, 422 for a body that is not a
    JSON object (FastAPI's validation of `data: dict`), {"encoder_urls": [...]} from the list."""

    async def read_url(request: web.Request) -> object:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise web.HTTPUnprocessableEntity(
                text=json.dumps(
                    {
                        "detail": [
                            {
                                "type": "dict_type",
                                "loc": ["body"],
                                "msg": "Input should be a valid dictionary",
                            }
                        ]
                    }
                ),
                content_type="application/json",
            )
        url = data.get("url")
        if not url:
            raise web.HTTPBadRequest(text=json.dumps({"error": MISSING_URL}), content_type="application/json")
        return url

    async def register(request: web.Request) -> web.Response:
        registry.register(await read_url(request))  # type: ignore[arg-type]
        return web.Response(text="OK")

    async def unregister(request: web.Request) -> web.Response:
        registry.unregister(await read_url(request))  # type: ignore[arg-type]
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
    timeouts: EncodeTimeouts,
) -> dict:
    """One encoder's share. A failure is a scheduler abort with the code receiver.py gives it
    (MMReceiverHTTP.encode via _extract_encoder_error; the scheduler's wait, _process_waiting_requests)."""
    body = {"rid": request_id, "part_index": part, "num_parts": parts, "images": [i.wire() for i in images]}
    start = time.perf_counter()
    try:
        async with session.post(
            f"{url}/encode", json=body, timeout=aiohttp.ClientTimeout(total=timeouts.seconds)
        ) as response:
            if response.status != 200:
                detail = (await response.text())[:300]
                raise SimRequestError(f"encoder {url} failed: {detail}", status=response.status, abort=True)
            result = await response.json()
    except TimeoutError:
        raise timeouts.error() from None
    except aiohttp.ClientError as exc:
        raise SimRequestError(str(exc), status=HTTPStatus.BAD_GATEWAY, abort=True) from None
    timings = result.get("timings", {})
    return {
        "url": url,
        "part_index": part,
        "images": len(images),
        "image_indices": [i.index for i in images],
        "vision_tokens": result.get("vision_tokens", 0),
        "cache_hits": sum(1 for i in result.get("images", []) if i.get("cache_hit")),
        "preprocess_ms": timings.get("preprocess_ms"),
        "queue_ms": timings.get("queue_ms"),
        "forward_ms": timings.get("forward_ms"),
        "transfer_ms": timings.get("transfer_ms"),
        "server_ms": timings.get("e2e_ms"),
        "rtt_ms": round((time.perf_counter() - start) * 1000, 3),
    }


@dataclass(frozen=True)
class EncodeTimeouts:
    """The two clocks on a dispatched part: the HTTP call (SGLANG_ENCODER_HTTP_TIMEOUT, 1800 s) and the
    scheduler's wait for the embeddings (SGLANG_ENCODER_RECV_TIMEOUT, 180 s); the shorter one ends it."""

    http: float
    receive: float

    @property
    def seconds(self) -> float:
        return min(self.http, self.receive)

    def error(self) -> SimRequestError:
        if self.receive <= self.http:
            message = f"Timeout waiting for image embedding after {self.receive}s"
            return SimRequestError(message, status=HTTPStatus.REQUEST_TIMEOUT, abort=True)
        message = f"Encoder HTTP request timeout ({self.http}s)"
        return SimRequestError(message, status=HTTPStatus.GATEWAY_TIMEOUT, abort=True)


def assign_counts(items: int, encoders: int, rng: random.Random | None = None) -> list[int]:
    """How many of a request's images each encoder (in list order) gets: SGLang's
    MMReceiver._assign_items_by_modality (receiver.py) for one modality, with its random shuffle of the
    encoder positions, so the same random state gives the same counts (tests/fidelity). The planner passes
    its own seeded `rng`; the servers use the module's, as SGLang does."""
    positions = list(range(encoders))
    (rng or random).shuffle(positions)
    base, remainder = divmod(items, encoders)
    counts = [0] * encoders
    for i in range(encoders):
        counts[positions[i]] = base + (1 if i < remainder else 0)
    return counts


def dispatch_plan(images: list[ImageInfo], encoders: list[str]) -> list[tuple[str, list[ImageInfo]]]:
    """(encoder URL, its images) for every encoder that gets any: contiguous slices in list order, as
    MMReceiver.encode cuts them."""
    plan, start = [], 0
    for url, count in zip(encoders, assign_counts(len(images), len(encoders)), strict=True):
        if count:
            plan.append((url, images[start : start + count]))
            start += count
    return plan


async def encode_remotely(
    session: aiohttp.ClientSession,
    encoders: list[str],
    request_id: str,
    images: list[ImageInfo],
    timeouts: EncodeTimeouts,
) -> list[dict]:
    """POST each encoder its share of `images`, all at once; one failure fails the request (SGLang has no
    failover to another encoder)."""
    plan = dispatch_plan(images, encoders)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_encode_part(session, url, request_id, part, len(plan), share, timeouts))
                for part, (url, share) in enumerate(plan)
            ]
    except ExceptionGroup as failures:
        first = failures.exceptions[0]
        if isinstance(first, SimRequestError):
            raise first from None
        raise
    return [task.result() for task in tasks]
