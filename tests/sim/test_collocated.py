"""A plain (collocated) server: it encodes its own images, prefills and decodes on one GPU."""

from __future__ import annotations

import pytest

from sglang_epd.sim.client import chat_body, data_url, image_bytes
from sglang_epd.sim.cost import CostModel, vision_tokens

from .simproc import Http, SimLauncher, SimServer

STEP_MS = 20.0


@pytest.fixture
def server(sims: SimLauncher) -> SimServer:
    return sims.start("--enable-metrics", env={"SGLANG_SIM_DECODE_STEP_MS": str(STEP_MS)})


def test_image_request_with_a_1080p_jpeg(server: SimServer, http: Http) -> None:
    pictures = [data_url(image_bytes(1920, 1080, "JPEG"), "jpeg"), data_url(image_bytes(64, 64, seed=1))]
    result = http.chat(server.url, chat_body("1234" * 5, pictures, max_tokens=3))
    assert result.status == 200, result.body
    assert result.body["object"] == "chat.completion"
    assert result.body["choices"][0]["finish_reason"] == "length"
    assert result.text == " sim" * 3
    sim = result.sim  # the x-sglang-sim-timings header
    assert (sim["role"], sim["images"], sim["encoders"]) == ("server", 2, [])
    assert sim["vision_tokens"] == 2691 + vision_tokens(64, 64) == result.usage["prompt_tokens"] - 5
    cost = CostModel()
    assert sim["encode_ms"] == pytest.approx(
        cost.encode_ms(2691) + cost.encode_ms(vision_tokens(64, 64)), abs=0.01
    )
    assert sim["ttft_ms"] >= sim["encode_ms"] + sim["prefill_ms"]
    assert sim["e2e_ms"] >= sim["ttft_ms"] + 2 * STEP_MS
    assert http.metric(server.url, "sglang:prompt_tokens_total") == result.usage["prompt_tokens"]
    assert http.metric(server.url, "sglang:generation_tokens_total") == 3


def test_stream_without_usage_ends_with_finish_chunk_and_done(server: SimServer, http: Http) -> None:
    result = http.chat(server.url, chat_body("hi", max_tokens=2, stream=True))
    assert result.status == 200 and result.done
    assert [c["choices"][0]["delta"] for c in result.chunks] == [
        {"reasoning_content": None, "role": "assistant", "content": ""},
        {"reasoning_content": None, "content": " sim"},
        {"reasoning_content": None, "content": " sim"},
        {"reasoning_content": None},
    ]
    assert "usage" not in result.chunks[-1] and result.usage is None
    assert result.chunks[-1]["sglang_sim"]["completion_tokens"] == 2
    assert result.client_ttft_ms is not None and result.client_ttft_ms >= result.sim["ttft_ms"]


def test_continuous_batching_serves_concurrent_requests_together(server: SimServer, http: Http) -> None:
    tokens = 20
    results = http.chat_all([(server.url, chat_body("hi", max_tokens=tokens, stream=True))] * 4)
    assert all(r.status == 200 and r.usage is None and len(r.chunks) == tokens + 2 for r in results)
    # One at a time the last would end after 4 x 20 steps; batched, all end after about 20.
    assert max(r.sim["e2e_ms"] for r in results) < 2.5 * tokens * STEP_MS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}], "no network"),
        (
            [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}],
            "not a readable image",
        ),
        ([{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}], "not simulated"),
    ],
)
def test_bad_images_are_refused(server: SimServer, http: Http, content: list, message: str) -> None:
    result = http.chat(server.url, {"model": "m", "messages": [{"role": "user", "content": content}]})
    assert result.status == 400
    assert message in result.error
    assert result.body["object"] == "error"
