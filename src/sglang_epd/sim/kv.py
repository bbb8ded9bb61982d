"""PD KV hand-off: the prefill's bootstrap server (on --disaggregation-bootstrap-port) and the decode's
fetch. The simulator's own HTTP API stands in for Mooncake/NIXL; only its timing and failures matter:

    GET /kv/{bootstrap_room}?wait=SECONDS  -> 200 {record} once the prefill published the room
                                              (the record is handed over once), 404 after SECONDS
    GET /health                            -> 200

A record is {"prompt_tokens", "first_token", "published_at", "prefill": {timings}} or, when the prefill
failed the request, {"error": message} so the decode fails at once instead of waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time

import aiohttp
from aiohttp import web

from .errors import SimRequestError

log = logging.getLogger(__name__)

RECORD_TTL_SECONDS = 600.0  # rooms nobody fetched (a decode that never came) are dropped after this


class KvStore:
    def __init__(self) -> None:
        self._records: dict[int, tuple[float, dict]] = {}
        self._events: dict[int, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._records)

    def publish(self, room: int, record: dict) -> None:
        now = time.monotonic()
        for stale in [r for r, (t, _) in self._records.items() if now - t > RECORD_TTL_SECONDS]:
            del self._records[stale]
        self._records[room] = (now, record)
        event = self._events.pop(room, None)
        if event is not None:
            event.set()

    async def take(self, room: int, wait: float) -> dict | None:
        """The room's record (removed from the store), waiting up to `wait` seconds for it."""
        if room not in self._records:
            event = self._events.setdefault(room, asyncio.Event())
            try:
                async with asyncio.timeout(wait):
                    await event.wait()
            except TimeoutError:
                return None
            finally:
                if self._events.get(room) is event and not event.is_set():
                    del self._events[room]
        entry = self._records.pop(room, None)
        return entry[1] if entry else None


def bootstrap_app(store: KvStore, max_wait: float) -> web.Application:
    async def get_kv(request: web.Request) -> web.Response:
        try:
            room = int(request.match_info["room"])
            wait = min(float(request.query.get("wait", "0")), max_wait)
        except ValueError:
            return web.json_response({"error": "room and wait must be numbers"}, status=400)
        record = await store.take(room, max(0.0, wait))
        if record is None:
            return web.json_response({"error": f"bootstrap_room {room} not published"}, status=404)
        return web.json_response(record)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/kv/{room}", get_kv)
    app.router.add_get("/health", health)
    return app


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "cannot resolve the host name"
    if exc.os_error.errno == errno.ECONNREFUSED:
        return "Connection refused"
    return exc.os_error.strerror or str(exc.os_error)


# srt/disaggregation/decode.py, DecodePreallocQueue: _max_ensure_retries = 15, _ensure_retry_interval = 1.0
ROUTE_ATTEMPTS = 15


async def fetch_kv(
    session: aiohttp.ClientSession, host: str, port: int, room: int, timeout: float, retry_interval: float
) -> dict:
    """Wait for the prefill at host:port to publish `room`. As SGLang's decode: an unreachable prefill
    bootstrap server is asked ROUTE_ATTEMPTS times, `retry_interval` apart (_ensure_prefill_info); a room
    that never arrives fails after `timeout` (SGLANG_DISAGGREGATION_WAITING_TIMEOUT,
    CommonKVReceiver._check_waiting_timeout). Every failure is a scheduler abort (500)."""
    where = f"{host}:{port}"
    url = f"http://{where}/kv/{room}"
    started = time.monotonic()
    for attempt in range(1, ROUTE_ATTEMPTS + 1):
        try:
            async with session.get(
                url,
                params={"wait": str(timeout)},
                timeout=aiohttp.ClientTimeout(total=timeout + 5, sock_connect=5.0),
            ) as response:
                if response.status == 404:
                    elapsed = time.monotonic() - started
                    raise _decode_failed(
                        "transfer",
                        room,
                        f"Request {room} timed out after {elapsed:.1f}s in KVPoll.WaitingForInput",
                    )
                if response.status != 200:
                    reason = f"HTTP {response.status} {(await response.text())[:200]}"
                    raise _decode_failed("transfer", room, reason)
                record = await response.json()
                break
        except aiohttp.ClientConnectorError as exc:
            if attempt == ROUTE_ATTEMPTS:
                reason = (
                    f"Could not fetch prefill parallel info from {where} after {ROUTE_ATTEMPTS} attempts "
                    f"({_connect_reason(exc)}: check the prefill's --disaggregation-bootstrap-port and the "
                    "router's --prefill URL BOOTSTRAP_PORT)"
                )
                raise _decode_failed("handshake", room, reason) from None
            await asyncio.sleep(retry_interval)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _decode_failed("transfer", room, repr(exc)) from None
    if "error" in record:
        raise _decode_failed("transfer", room, f"the prefill behind {where} failed: {record['error']}")
    return record


def _decode_failed(stage: str, room: int, reason: str) -> SimRequestError:
    """decode.py's abort messages: "Decode handshake failed ..." / "Decode transfer failed ..."."""
    message = (
        f"Decode {stage} failed for request bootstrap_room={room} with exception KVTransferError: {reason}"
    )
    return SimRequestError(message, status=500, abort=True)
