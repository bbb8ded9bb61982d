"""A fast stand-in for an OpenAI chat server, for client tests and for measuring the client's own limits.

It reads request bodies without parsing them (only `"max_tokens":N` near the start is looked at) and
answers at once, so that the load generator, not the server, is what is measured. Behaviour comes from
the command line and can be changed per request by a path prefix, so one server serves every case:

    http://HOST:PORT/standin/mode=disconnect,tokens=5/v1/chat/completions

Parameters: `mode` (below), `tokens` (default: the request's max_tokens), `ttft_ms` (wait before the
first token), `service_ms` (a server that prefills one request at a time, this long each: it saturates
at 1000/service_ms requests per second), `itl_ms` (wait between tokens; 0 writes the whole stream at
once), `keep_alive` (1/0).
Modes: `ok` (SGLang's stream: role-only chunk with the first token, a chunk per token, finish, usage,
[DONE]), `reasoning` (the first 3 tokens as reasoning_content), `single-chunk` (the whole answer in one
chunk), `json` (a non-streamed answer), `http-500`, `disconnect` (2 tokens, then the connection drops),
`malformed` (a data line that is not JSON), `empty` (no text at all), `no-done` (no `data: [DONE]`),
`stream-error` (an error object mid-stream), `stall` (headers, then silence).

    python -m sglang_epd.standin --host 127.0.0.1 --port 0   # prints its URL, serves until SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

MODES = (
    "ok",
    "reasoning",
    "single-chunk",
    "json",
    "http-500",
    "disconnect",
    "malformed",
    "empty",
    "no-done",
    "stream-error",
    "stall",
)
MAX_TOKENS = re.compile(rb'"max_(?:completion_)?tokens":\s*(\d+)')
PREFIX_BYTES = 2048
MODEL = "standin"


@dataclass(frozen=True)
class Behaviour:
    mode: str = "ok"
    tokens: int | None = None
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    service_ms: float = 0.0
    keep_alive: bool = True

    def with_path(self, path: str) -> tuple[Behaviour, str]:
        """Apply a `/standin/k=v,.../` prefix; return the behaviour and the rest of the path."""
        if not path.startswith("/standin/"):
            return self, path
        spec, _, rest = path[len("/standin/") :].partition("/")
        changes: dict[str, Any] = {}
        for item in filter(None, spec.split(",")):
            key, _, value = item.partition("=")
            if key == "mode":
                if value not in MODES:
                    raise ValueError(f"unknown stand-in mode {value!r}; known: {', '.join(MODES)}")
                changes["mode"] = value
            elif key == "tokens":
                changes["tokens"] = int(value)
            elif key in ("ttft_ms", "itl_ms", "service_ms"):
                changes[key] = float(value)
            elif key == "keep_alive":
                changes["keep_alive"] = value not in ("0", "false")
            else:
                raise ValueError(f"unknown stand-in parameter {key!r}")
        return replace(self, **changes), "/" + rest


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class StandIn(asyncio.Protocol):
    """One connection. A Protocol rather than streams: the body is counted and dropped as it arrives,
    without being copied into a stream buffer, so a 13 MB request costs the stand-in little CPU."""

    def __init__(self, behaviour: Behaviour, busy: asyncio.Lock, connections: set[StandIn]) -> None:
        self.behaviour = behaviour
        self._busy = busy  # the one "GPU" of service_ms, shared by the server's connections
        self._connections = connections
        self._buffer = bytearray()
        self._reading_body = False
        self._remaining = 0
        self._prefix = b""
        self._request: tuple[str, str, dict[str, str], float] | None = None
        self._task: asyncio.Task | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        if self._task is not None:
            self._buffer += data  # the client does not pipeline; keep it for after the answer
            return
        if not self._reading_body:
            self._buffer += data
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 65536:
                    self.transport.close()
                return
            lines = self._buffer[:end].decode("latin-1").split("\r\n")
            data = bytes(self._buffer[end + 4 :])
            self._buffer.clear()
            method, path = lines[0].split(" ")[:2]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            self._request = (method, path, headers, time.perf_counter())
            self._remaining = int(headers.get("content-length", "0"))
            self._prefix = b""
            self._reading_body = True
        body = data[: self._remaining]
        if len(self._prefix) < PREFIX_BYTES:
            self._prefix += body[: PREFIX_BYTES - len(self._prefix)]
        self._remaining -= len(body)
        if self._remaining == 0:
            self._reading_body = False
            self._buffer += data[len(body) :]
            self._task = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        assert self._request is not None and self.transport is not None
        method, path, headers, received = self._request
        keep_alive = False
        try:
            keep_alive = await self._route(method, path, headers, received)
        except asyncio.CancelledError:
            return
        finally:
            self._task = None
        if not keep_alive:
            self.transport.close()
        elif self._buffer:
            pending, self._buffer = bytes(self._buffer), bytearray()
            self.data_received(pending)

    async def _route(self, method: str, path: str, headers: dict[str, str], received: float) -> bool:
        write = self.transport.write
        try:
            behaviour, path = self.behaviour.with_path(path)
        except ValueError as exc:
            write(self._plain(400, str(exc).encode(), keep_alive=False))
            return False
        keep_alive = behaviour.keep_alive and headers.get("connection", "").lower() != "close"
        if method == "GET" and path == "/v1/models":
            body = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
            write(self._plain(200, body, keep_alive, "application/json"))
            return keep_alive
        if method == "POST" and path == "/v1/chat/completions":
            match = MAX_TOKENS.search(self._prefix)
            tokens = behaviour.tokens or (int(match[1]) if match else 16)
            return await self._chat(behaviour, tokens, received, keep_alive)
        write(self._plain(404, b'{"message":"not found"}', keep_alive, "application/json"))
        return keep_alive

    @staticmethod
    def _plain(status: int, body: bytes, keep_alive: bool, content_type: str = "text/plain") -> bytes:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}[status]
        connection = "keep-alive" if keep_alive else "close"
        return (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {connection}\r\n\r\n"
        ).encode() + body

    async def _chat(self, b: Behaviour, tokens: int, received: float, keep_alive: bool) -> bool:
        write = self.transport.write
        if b.ttft_ms:
            await asyncio.sleep(b.ttft_ms / 1000)
        if b.service_ms:
            async with self._busy:
                await asyncio.sleep(b.service_ms / 1000)
        if b.mode == "http-500":
            body = json.dumps(
                {"object": "error", "message": "stand-in failure", "type": "InternalServerError", "code": 500}
            )
            write(self._plain(500, body.encode(), keep_alive, "application/json"))
            return keep_alive
        if b.mode == "json":
            answer = {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " tok" * tokens},
                        "finish_reason": "length",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
            }
            write(self._plain(200, json.dumps(answer).encode(), keep_alive, "application/json"))
            return keep_alive
        connection = "keep-alive" if keep_alive else "close"
        write(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: {connection}\r\n\r\n".encode()
        )
        if b.mode == "stall":
            await asyncio.sleep(3600)
        first_at = time.perf_counter()
        for i, event in enumerate(self._events(b.mode, tokens)):
            if event is None:  # the disconnect point
                self.transport.abort()
                return False
            if isinstance(event, dict):  # the closing chunk carries the server-side timings
                timings = {
                    "ttft_ms": (first_at - received) * 1000,
                    "e2e_ms": (time.perf_counter() - received) * 1000,
                }
                event = _event({**event, "sglang_sim": timings})
            write(_chunked(event))
            if b.itl_ms and i < tokens - 1:
                await asyncio.sleep(b.itl_ms / 1000)
        write(b"0\r\n\r\n")
        return keep_alive

    @staticmethod
    def _events(mode: str, tokens: int) -> list[bytes | dict | None]:
        """The stream's events in order; a dict is the last JSON chunk, None drops the connection."""
        text = [_event(_chunk({"content": " tok"})) for _ in range(tokens)]
        first_with_role = _event(_chunk({"role": "assistant", "content": ""})) + text[0] if text else b""
        finish = _event(_chunk({}, "length"))
        usage = {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
        }
        done = b"data: [DONE]\n\n"
        if mode == "ok":
            return [first_with_role, *text[1:], finish, usage, done]
        if mode == "reasoning":
            thinking = [_event(_chunk({"reasoning_content": " think"})) for _ in range(3)]
            role = _event(_chunk({"role": "assistant", "content": ""}))
            return [role + thinking[0], *thinking[1:], *text, finish, usage, done]
        if mode == "single-chunk":
            whole = _event(_chunk({"role": "assistant", "content": " tok" * tokens}))
            return [whole, finish, usage, done]
        if mode == "disconnect":
            return [first_with_role, *text[1:2], None]
        if mode == "malformed":
            return [first_with_role, b"data: {not json\n\n", *text[1:], finish, usage, done]
        if mode == "empty":
            return [_event(_chunk({"role": "assistant", "content": ""})), finish, usage, done]
        if mode == "no-done":
            return [first_with_role, *text[1:], finish, usage]
        if mode == "stream-error":
            error = _event({"error": {"message": "stand-in error mid-stream", "code": 500}})
            return [first_with_role, error, done]
        raise AssertionError(mode)


class StandInServer:
    """The stand-in on its own event loop in a background thread: `with StandInServer() as url: ...`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, behaviour: Behaviour | None = None) -> None:
        self.host, self.port = host, port
        self.behaviour = behaviour or Behaviour()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="standin", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[StandIn] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=10)
        return self.url

    async def _start(self) -> None:
        self._server = await _listen(self.host, self.port, self.behaviour, self._connections)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for connection in list(self._connections):
                connection.transport.abort()
            await asyncio.sleep(0)  # let connection_lost cancel the answers in progress

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def _listen(
    host: str, port: int, behaviour: Behaviour, connections: set[StandIn] | None = None
) -> asyncio.base_events.Server:
    busy, connections = asyncio.Lock(), set() if connections is None else connections
    return await asyncio.get_running_loop().create_server(
        lambda: StandIn(behaviour, busy, connections), host, port
    )


async def _serve(host: str, port: int, behaviour: Behaviour) -> None:
    server = await _listen(host, port, behaviour)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sglang_epd.standin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument(
        "--tokens", type=int, default=None, help="tokens per answer (default: the request's max_tokens)"
    )
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--service-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    behaviour = Behaviour(args.mode, args.tokens, args.ttft_ms, args.itl_ms, args.service_ms)
    asyncio.run(_serve(args.host, args.port, behaviour))


if __name__ == "__main__":
    main()
