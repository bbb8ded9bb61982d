"""The HTTP client and the chat exchange against the stand-in server: error kinds, line-by-line timing,
connection reuse."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sglang_epd.load import samples
from sglang_epd.load.chat_client import new_sample, run_chat
from sglang_epd.load.httpstream import HttpClient, Target, TransportError
from sglang_epd.load.payload import PreparedRequest, RequestFactory
from sglang_epd.load.profiles import parse_profile

from ..sim.simproc import free_port


@pytest.fixture(scope="module")
def factory() -> RequestFactory:
    profile = parse_profile(
        "t", {"description": "x", "images_per_request": 2, "resolution": "64x64", "max_tokens": 6}
    )
    return RequestFactory(profile, "standin", pool=None)


@pytest.fixture
def request_(factory: RequestFactory) -> PreparedRequest:
    return factory.next()


def chat(url: str, request: PreparedRequest, *, timeout: float = 10.0) -> samples.RequestSample:
    return run_chat(HttpClient(url, timeout=timeout), request, new_sample(request, "t-1", 0))


def test_a_good_stream(standin: str, request_: PreparedRequest) -> None:
    sample = chat(standin, request_)
    assert sample.ok, sample.error_detail
    assert sample.status == 200
    assert sample.output_tokens == 6 and sample.output_tokens_source == "usage"
    assert len(sample.itl_ms) == 5
    assert 0 < sample.ttfb_ms <= sample.ttft_ms <= sample.e2e_ms
    assert sample.server_ttft_ms is not None
    assert sample.request_bytes == request_.content_length and sample.images == 2


def test_tokens_are_timed_as_they_arrive_not_when_a_buffer_fills(
    standin: str, request_: PreparedRequest
) -> None:
    sample = chat(f"{standin}/standin/itl_ms=40,tokens=4", request_)
    assert sample.ok
    assert sample.ttft_ms < 40
    assert all(itl >= 35 for itl in sample.itl_ms), sample.itl_ms
    assert sample.e2e_ms >= 3 * 35


@pytest.mark.parametrize(
    ("mode", "kind", "message"),
    [
        ("http-500", "http_500", "HTTP 500 Internal Server Error: stand-in failure"),
        ("disconnect", samples.DISCONNECT, "connection closed"),
        ("malformed", samples.MALFORMED, "not JSON"),
        ("empty", samples.EMPTY, "no content"),
        ("no-done", samples.MALFORMED, "[DONE]"),
        ("stream-error", samples.STREAM_ERROR, "stand-in error mid-stream"),
    ],
)
def test_failures_become_error_kinds(
    standin: str, request_: PreparedRequest, mode: str, kind: str, message: str
) -> None:
    sample = chat(f"{standin}/standin/mode={mode}", request_)
    assert not sample.ok
    assert sample.error == kind
    assert message in sample.error_detail
    assert sample.e2e_ms is not None


def test_a_disconnect_mid_stream_keeps_the_tokens_before_it(standin: str, request_: PreparedRequest) -> None:
    sample = chat(f"{standin}/standin/mode=disconnect", request_)
    assert sample.error == samples.DISCONNECT
    assert sample.ttft_ms is not None and sample.output_tokens == 2


@pytest.mark.parametrize("mode", ["reasoning", "single-chunk", "json"])
def test_other_answer_shapes_succeed(standin: str, request_: PreparedRequest, mode: str) -> None:
    sample = chat(f"{standin}/standin/mode={mode}", request_)
    assert sample.ok, sample.error_detail
    assert sample.ttft_ms is not None


def test_a_stalled_server_times_out(standin: str, request_: PreparedRequest) -> None:
    sample = chat(f"{standin}/standin/mode=stall", request_, timeout=0.3)
    assert sample.error == samples.TIMEOUT
    assert 250 <= sample.e2e_ms < 2000


def test_nothing_listening_is_a_connect_error(request_: PreparedRequest) -> None:
    port = free_port("127.0.0.1")  # closed again: nothing listens there
    sample = chat(f"http://127.0.0.1:{port}", request_)
    assert sample.error == samples.CONNECT
    assert f"127.0.0.1:{port}" in sample.error_detail


def test_kept_alive_connections_are_reused_and_closed_ones_are_not(
    standin: str, factory: RequestFactory
) -> None:
    client = HttpClient(standin)
    first = run_chat(client, factory.next(), new_sample(factory.next(), "a", 0))
    second = run_chat(client, factory.next(), new_sample(factory.next(), "b", 0))
    assert first.connect_ms is not None and second.connect_ms is None
    closing = HttpClient(f"{standin}/standin/keep_alive=0")
    for name in ("c", "d"):
        assert run_chat(closing, factory.next(), new_sample(factory.next(), name, 0)).connect_ms is not None


def test_bad_urls_are_refused_with_the_expected_form() -> None:
    with pytest.raises(ValueError, match=r"http://HOST\[:PORT\]"):
        Target.parse("router:8000")


class CannedServer:
    """Answers one connection with fixed byte pieces, a pause between them."""

    def __init__(self, pieces: list[bytes], pause: float) -> None:
        self.pieces, self.pause = pieces, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            for piece in self.pieces:
                connection.sendall(piece)
                time.sleep(self.pause)  # the gap that the client must see between pieces

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.listener.close()


@pytest.fixture
def canned() -> Iterator:
    servers: list[CannedServer] = []

    def start(pieces: list[bytes], pause: float = 0.02) -> str:
        servers.append(CannedServer(pieces, pause))
        return servers[-1].url

    yield start
    for server in servers:
        server.close()


BODY = b"data: one\n\ndata: two\n\n"


@pytest.mark.parametrize(
    "pieces",
    [
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n",
            b"5\r\none\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n",
        ],
        [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\ndata: one\n" % len(BODY), b"\ndata: two\n\n"],
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\ndata: one\n\n", b"data: two\n\n"],
    ],
    ids=["chunked", "content-length", "until-close"],
)
def test_body_framings_deliver_every_byte_with_arrival_times(canned, pieces: list[bytes]) -> None:
    client = HttpClient(canned(pieces))
    response = client.request("GET", "/")
    received = list(response.iter_body())
    response.close()
    assert b"".join(data for data, _ in received) == BODY
    times = [at for _, at in received]
    assert times == sorted(times) and times[-1] - times[0] >= 0.015


def test_a_chunked_body_cut_short_is_a_disconnect(canned) -> None:
    client = HttpClient(canned([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly part"]))
    response = client.request("GET", "/")
    with pytest.raises(TransportError) as caught:
        list(response.iter_body())
    response.close()
    assert caught.value.kind == samples.DISCONNECT


def test_a_response_that_is_not_http_is_malformed(canned) -> None:
    with pytest.raises(TransportError) as caught:
        HttpClient(canned([b"SSH-2.0-OpenSSH\r\n\r\n"])).request("GET", "/")
    assert caught.value.kind == samples.MALFORMED
