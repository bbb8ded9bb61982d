"""A small HTTP/1.1 client with one job: send a large request body given as pieces (8 x 1080p images are
~10 MB; the pieces are sent as they are, never joined into one buffer) and hand back the response body
as it arrives, each piece with the time its bytes were received.

Why not requests or geventhttpclient: their streaming reads (`iter_content(n)`, `read(n)`) wait until n
bytes are buffered, which hides the first token. Here every `recv` returns whatever the kernel has, so a
token's SSE line is timed when it arrives. Under Locust the socket module is gevent's (monkey patched),
so the same code is cooperative there and blocking in plain Python.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import samples

RECV_SIZE = 256 * 1024
SEND_SLICE = 512 * 1024
MAX_HEAD_BYTES = 64 * 1024


class TransportError(Exception):
    """The exchange failed below HTTP: `kind` is one of the sample error kinds."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"the host must look like http://HOST[:PORT] or https://HOST[:PORT], got {url!r}"
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.base_path}"


class HttpClient:
    """Connections to one target. Kept-alive connections are reused; a server that answers
    `Connection: close` (the sglang router does) gets a new connection per request."""

    def __init__(self, url: str, *, timeout: float = 600.0, connect_timeout: float = 10.0) -> None:
        self.target = Target.parse(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._idle: list[socket.socket] = []
        self._address: tuple | None = None
        self._tls = ssl.create_default_context() if self.target.scheme == "https" else None

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    def request(
        self,
        method: str,
        path: str,
        body: Sequence[bytes] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send the request and read the status line and headers. The clock (`Response.sent_at`) starts
        before the connection is made. Raises TransportError."""
        sent_at = time.perf_counter()
        length = sum(len(piece) for piece in body)
        head = [
            f"{method} {self.target.base_path}{path} HTTP/1.1",
            f"Host: {self.target.host}:{self.target.port}",
        ]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method in ("POST", "PUT"):
            head.append(f"Content-Length: {length}")
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        for attempt in range(2):
            sock, reused, connect_ms = self._connection(sent_at)
            deadline = sent_at + self.timeout
            response = Response(self, sock, sent_at, deadline, connect_ms)
            try:
                sock.settimeout(max(deadline - time.perf_counter(), 0.001))  # the upload's deadline too
                _send(sock, head_bytes, body)
                response.read_head(method)
                return response
            except TransportError as exc:
                response.close(reusable=False)
                # A kept-alive connection the server had already closed: the request never reached it.
                if reused and attempt == 0 and exc.kind == samples.DISCONNECT and not response.received:
                    continue
                raise
        raise AssertionError("unreachable")

    def get_json(self, path: str) -> tuple[int, object]:
        """A small GET for checks and discovery: (status, parsed JSON or the text)."""
        response = self.request("GET", path, headers={"Accept": "application/json"})
        try:
            text = response.read().decode("utf-8", "replace")
        finally:
            response.close()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text

    def _connection(self, sent_at: float) -> tuple[socket.socket, bool, float | None]:
        if self._idle:
            return self._idle.pop(), True, None
        try:
            if self._address is None:
                infos = socket.getaddrinfo(self.target.host, self.target.port, type=socket.SOCK_STREAM)
                self._address = infos[0][4]
                family = infos[0][0]
            else:
                family = socket.AF_INET6 if len(self._address) == 4 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            sock.connect(self._address)
        except TimeoutError as exc:
            raise TransportError(samples.CONNECT, f"connecting to {self.target.url} timed out") from exc
        except OSError as exc:
            self._address = None
            raise TransportError(samples.CONNECT, f"cannot connect to {self.target.url}: {exc}") from exc
        # Small pieces (request head, JSON glue) must not wait for the ACK of the previous big one.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self.target.host)
            except OSError as exc:
                sock.close()
                raise TransportError(samples.CONNECT, f"TLS with {self.target.url} failed: {exc}") from exc
        return sock, False, (time.perf_counter() - sent_at) * 1000

    def _release(self, sock: socket.socket) -> None:
        self._idle.append(sock)


def _send(sock: socket.socket, head: bytes, body: Sequence[bytes]) -> None:
    try:
        sock.sendall(head)
        for piece in body:
            view = memoryview(piece)
            for offset in range(0, len(view), SEND_SLICE):
                sock.sendall(view[offset : offset + SEND_SLICE])
                # Under gevent (monkey patched) this lets other greenlets read their streams between
                # slices, so one 13 MB upload does not delay another request's first token.
                time.sleep(0)
    except TimeoutError as exc:
        raise TransportError(samples.TIMEOUT, "sending the request timed out") from exc
    except OSError as exc:
        raise TransportError(
            samples.DISCONNECT, f"the connection closed while sending the request: {exc}"
        ) from exc


class Response:
    """Status, headers and the body as it arrives. `close()` returns the connection for reuse when the
    body was read to its end and the server keeps connections alive."""

    def __init__(
        self,
        client: HttpClient,
        sock: socket.socket,
        sent_at: float,
        deadline: float,
        connect_ms: float | None,
    ) -> None:
        self._client = client
        self._sock: socket.socket | None = sock
        self._deadline = deadline
        self._buffer = b""
        self._pos = 0
        self._at = 0.0  # arrival time of the latest received bytes
        self._complete = False
        self._keep_alive = False
        self._framing = "close"
        self._remaining = 0
        self.sent_at = sent_at
        self.connect_ms = connect_ms
        self.first_byte_at: float | None = None
        self.received = 0
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}

    # Receiving ------------------------------------------------------------------------------------------

    def _recv(self) -> bool:
        """Read whatever has arrived; False at the end of the connection."""
        assert self._sock is not None
        remaining = self._deadline - time.perf_counter()
        if remaining <= 0:
            raise TransportError(samples.TIMEOUT, "the request timed out")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(RECV_SIZE)
        except TimeoutError as exc:
            raise TransportError(samples.TIMEOUT, "the request timed out waiting for the server") from exc
        except OSError as exc:
            raise TransportError(samples.DISCONNECT, f"the connection broke: {exc}") from exc
        self._at = time.perf_counter()
        if not data:
            return False
        if self.first_byte_at is None:
            self.first_byte_at = self._at
        self.received += len(data)
        self._buffer = self._buffer[self._pos :] + data if self._pos < len(self._buffer) else data
        self._pos = 0
        return True

    def _line(self, what: str) -> bytes:
        while (end := self._buffer.find(b"\n", self._pos)) < 0:
            if len(self._buffer) - self._pos > MAX_HEAD_BYTES:
                raise TransportError(samples.MALFORMED, f"the {what} is longer than {MAX_HEAD_BYTES} bytes")
            if not self._recv():
                raise TransportError(samples.DISCONNECT, f"the connection closed in the middle of the {what}")
        line = self._buffer[self._pos : end]
        self._pos = end + 1
        return line.rstrip(b"\r")

    def _take(self, limit: int | None) -> tuple[bytes, float] | None:
        """Buffered body bytes (at most `limit`), receiving once if none are buffered; None at EOF."""
        if self._pos >= len(self._buffer) and not self._recv():
            return None
        end = len(self._buffer) if limit is None else min(len(self._buffer), self._pos + limit)
        data = self._buffer[self._pos : end]
        self._pos = end
        return data, self._at

    def read_head(self, method: str) -> None:
        while True:
            status_line = self._line("status line").decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise TransportError(samples.MALFORMED, f"not an HTTP status line: {status_line[:80]!r}")
            self.status, self.reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
            self.headers = {}
            while line := self._line("response headers"):
                name, _, value = line.decode("latin-1").partition(":")
                self.headers[name.strip().lower()] = value.strip()
            if not 100 <= self.status < 200:
                break
        connection = self.headers.get("connection", "").lower()
        self._keep_alive = "close" not in connection and (
            parts[0] != "HTTP/1.0" or "keep-alive" in connection
        )
        if method == "HEAD" or self.status in (204, 304):
            self._framing, self._complete = "none", True
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._framing = "chunked"
        elif "content-length" in self.headers:
            self._framing, self._remaining = "length", int(self.headers["content-length"])
            self._complete = self._remaining == 0
        else:
            self._keep_alive = False

    # The body -------------------------------------------------------------------------------------------

    def iter_body(self) -> Iterator[tuple[bytes, float]]:
        """The body's bytes as they arrive, with their arrival time (time.perf_counter). Raises
        TransportError when the connection ends before the body does."""
        if self._framing == "chunked":
            yield from self._chunked()
        elif self._framing == "length":
            while self._remaining:
                piece = self._take(self._remaining)
                if piece is None:
                    raise TransportError(
                        samples.DISCONNECT, f"the connection closed {self._remaining} bytes early"
                    )
                self._remaining -= len(piece[0])
                yield piece
        elif self._framing == "close":
            while (piece := self._take(None)) is not None:
                yield piece
        self._complete = True

    def _chunked(self) -> Iterator[tuple[bytes, float]]:
        while True:
            size_line = self._line("chunk size line")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise TransportError(samples.MALFORMED, f"bad chunk size line {size_line[:40]!r}") from exc
            if size == 0:
                while self._line("chunked trailer"):
                    pass
                return
            while size:
                piece = self._take(size)
                if piece is None:
                    raise TransportError(samples.DISCONNECT, "the connection closed in the middle of a chunk")
                size -= len(piece[0])
                yield piece
            if self._line("chunk end"):
                raise TransportError(samples.MALFORMED, "a chunk is longer than its size line says")

    def read(self, limit: int = 1 << 20) -> bytes:
        """The rest of the body (for error answers and small JSON), at most `limit` bytes kept."""
        kept: list[bytes] = []
        size = 0
        for data, _ in self.iter_body():
            if size < limit:
                kept.append(data[: limit - size])
                size += len(kept[-1])
        return b"".join(kept)

    def close(self, reusable: bool = True) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if reusable and self._complete and self._keep_alive and self._pos >= len(self._buffer):
            self._client._release(sock)
        else:
            with contextlib.suppress(OSError):
                sock.close()
