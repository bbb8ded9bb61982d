"""PD and EPD: the router's bootstrap fields, the KV hand-off, and the decode's SSE stream."""

from __future__ import annotations

import random
import time

import pytest

from sglang_epd.sim.client import chat_body, data_url, image_bytes, wait_for
from sglang_epd.sim.cost import vision_tokens

from .simproc import Http, SimLauncher, SimServer, free_port

KV_PORT = "--disaggregation-bootstrap-port"
KV_TIMEOUT_S = 2.0


def room() -> int:
    return random.getrandbits(63)


def routed(
    body: dict, prefill: SimServer, port: int | None = None, bootstrap_room: int | None = None
) -> dict:
    """What the PD router adds to the body it sends to one prefill and one decode."""
    return dict(
        body,
        bootstrap_host=prefill.host,
        bootstrap_port=port,
        bootstrap_room=room() if bootstrap_room is None else bootstrap_room,
    )


@pytest.fixture
def prefill(sims: SimLauncher) -> SimServer:
    return sims.start("--disaggregation-mode", "prefill", "--enable-metrics", free_port_flags=(KV_PORT,))


@pytest.fixture
def decode(sims: SimLauncher, prefill: SimServer) -> SimServer:
    """Same bootstrap port as its prefill, like the chart renders them (8998 on both)."""
    return sims.start(
        "--disaggregation-mode",
        "decode",
        "--enable-metrics",
        KV_PORT,
        prefill.flag(KV_PORT),
        env={
            "SGLANG_DISAGGREGATION_WAITING_TIMEOUT": str(KV_TIMEOUT_S),
            "SGLANG_SIM_ROUTE_RETRY_INTERVAL": "0.1",
        },
    )


@pytest.fixture
def epd(sims: SimLauncher, http: Http) -> dict[str, SimServer | list[SimServer]]:
    """The chart's EPD topology: two encoders registered with a language-only prefill, one decode."""
    language = sims.start(
        "--language-only",
        "--disaggregation-mode",
        "prefill",
        "--enable-metrics",
        free_port_flags=("--encoder-bootstrap-port", KV_PORT),
    )
    register = ("--encoder-register-urls", language.port_url("--encoder-bootstrap-port"))
    flags = ("--encoder-only", "--enable-prefix-mm-cache", "--enable-metrics", *register)
    encoders = [sims.start(*flags, wait=False) for _ in range(2)]
    decode = sims.start("--disaggregation-mode", "decode", KV_PORT, language.flag(KV_PORT), wait=False)
    for server in (*encoders, decode):
        sims.wait_healthy(server)
    list_urls = f"{language.port_url('--encoder-bootstrap-port')}/list_encoder_urls"
    wait_for(lambda: len(http.get_json(list_urls)[1]["encoder_urls"]) == 2, 10, "both encoders to register")
    return {"prefill": language, "decode": decode, "encoders": encoders}


def test_pd_pair_streams_sse_from_decode(prefill: SimServer, decode: SimServer, http: Http) -> None:
    picture = data_url(image_bytes(640, 480))
    body = chat_body("hello " * 10, [picture], max_tokens=4, stream=True, include_usage=True)
    body = routed(body, prefill, port=int(prefill.flag(KV_PORT)))
    from_prefill, from_decode = http.chat_all([(prefill.url, body), (decode.url, body)])

    assert from_prefill.status == 200 and from_prefill.usage["completion_tokens"] == 1
    assert from_decode.status == 200 and from_decode.done
    chunks = from_decode.chunks
    assert chunks[0]["choices"][0]["delta"] == {"reasoning_content": None, "role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"] for c in chunks[1:5]] == [
        {"reasoning_content": None, "content": " sim"}
    ] * 4
    assert chunks[5]["choices"][0]["delta"] == {"reasoning_content": None}
    assert chunks[5]["choices"][0]["finish_reason"] == "length"
    assert chunks[6]["choices"] == [] and len(chunks) == 7
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    prompt_tokens = 15 + vision_tokens(640, 480)  # 60 characters of text ~ 15 tokens
    assert from_decode.usage == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 4,
        "total_tokens": prompt_tokens + 4,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
        "completion_tokens_details": None,
    }
    sim = from_decode.sim
    assert sim["role"] == "decode" and sim["prefill"]["server"] == prefill.url
    assert sim["images"] == 1 and sim["encoders"] == [] and sim["prompt_tokens"] == prompt_tokens
    assert 0 < sim["ttft_ms"] <= sim["e2e_ms"] and sim["kv_wait_ms"] >= 0
    assert http.metric(prefill.url, "sglang:kv_transfer_latency_ms_count") == 1
    assert http.metric(decode.url, "sglang:time_to_first_token_seconds_count") == 1


def test_null_bootstrap_port_means_the_decodes_own_flag(
    prefill: SimServer, decode: SimServer, http: Http
) -> None:
    body = routed(chat_body("hi", max_completion_tokens=3), prefill, port=None)
    body.pop("max_tokens")  # the router may rewrite max_tokens as max_completion_tokens
    _, from_decode = http.chat_all([(prefill.url, body), (decode.url, body)])
    assert from_decode.status == 200, from_decode.body
    assert from_decode.usage["completion_tokens"] == 3
    assert from_decode.sim["kv_transfer_ms"] > 0


def test_requests_without_bootstrap_fields_are_refused(
    prefill: SimServer, decode: SimServer, http: Http
) -> None:
    for server in (prefill, decode):
        result = http.chat(server.url, chat_body("hi"))
        assert result.status == 400
        assert "bootstrap_host and bootstrap_room are missing" in result.error


def test_unpublished_room_fails_in_the_stream_after_the_waiting_timeout(
    prefill: SimServer, decode: SimServer, http: Http
) -> None:
    """SGLANG_DISAGGREGATION_WAITING_TIMEOUT (300 s by default): a scheduler abort, so a streamed request
    has its 200 and an INTERNAL_SERVER_ERROR event, then [DONE] (serving_chat.py)."""
    start = time.monotonic()
    result = http.chat(decode.url, routed(chat_body("hi", stream=True), prefill, bootstrap_room=42))
    elapsed = time.monotonic() - start
    assert result.status == 200 and result.done
    assert result.chunks[0]["error"]["type"] == "INTERNAL_SERVER_ERROR"
    assert "Request 42 timed out after" in result.error and "KVPoll.WaitingForInput" in result.error
    assert KV_TIMEOUT_S - 0.1 <= elapsed < KV_TIMEOUT_S + 3


def test_unreachable_bootstrap_port_fails_after_15_tries(
    prefill: SimServer, decode: SimServer, http: Http
) -> None:
    """decode.py, _ensure_prefill_info: 15 tries 1 s apart (0.1 s here), then the handshake fails."""
    closed = free_port(prefill.host)
    start = time.monotonic()
    result = http.chat(decode.url, routed(chat_body("hi"), prefill, port=closed))
    assert (result.status, result.body["type"]) == (500, "500")
    assert (
        f"Could not fetch prefill parallel info from {prefill.host}:{closed} after 15 attempts"
        in result.error
    )
    assert 14 * 0.1 <= time.monotonic() - start < 10


def test_a_prefill_failure_reaches_the_decode(prefill: SimServer, decode: SimServer, http: Http) -> None:
    body = routed(chat_body("look", ["https://example.com/cat.png"]), prefill)
    start = time.monotonic()
    from_prefill, from_decode = http.chat_all([(prefill.url, body), (decode.url, body)])
    assert from_prefill.status == 400 and "no network" in from_prefill.error
    assert from_decode.status == 500 and "no network" in from_decode.error
    assert time.monotonic() - start < KV_TIMEOUT_S


def test_epd_8_images_land_4_and_4(epd: dict, http: Http) -> None:
    prefill, decode, encoders = epd["prefill"], epd["decode"], epd["encoders"]
    pictures = [data_url(image_bytes(1920, 1080, "JPEG", seed=i), "jpeg") for i in range(8)]
    body = routed(chat_body("what changed?", pictures, max_tokens=3, stream=True), prefill)
    from_prefill, from_decode = http.chat_all([(prefill.url, body), (decode.url, body)])
    assert from_prefill.status == 200, from_prefill.body
    assert from_decode.status == 200 and from_decode.done, from_decode.body
    sim = from_decode.chunks[-1]["sglang_sim"]  # no include_usage: the finish chunk carries the timings
    assert from_decode.chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert (sim["images"], sim["vision_tokens"]) == (8, 8 * 2691)
    assert sorted(p["images"] for p in sim["encoders"]) == [4, 4]
    assert {p["url"] for p in sim["encoders"]} == {e.url for e in encoders}
    # each encoder runs its 4 images back to back: at least 4 x (5 + 0.03 x 2691) ms
    assert all(p["forward_ms"] >= 4 * 85.7 for p in sim["encoders"])
    assert sim["encode_ms"] >= 4 * 85.7 and sim["ttft_ms"] > sim["encode_ms"]
    for encoder in encoders:
        assert http.metric(encoder.url, "sglang:encoder_mm_items_per_request_sum") == 4
