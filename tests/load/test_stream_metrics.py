"""From stream events to TTFT, ITL, TPOT, tokens and error kinds (no network)."""

from __future__ import annotations

import json

import pytest

from sglang_epd.load import samples
from sglang_epd.load.sse import SSEEvent
from sglang_epd.load.stream_metrics import StreamRecorder


def chunk(delta: dict | None = None, **extra: object) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
    return json.dumps({"object": "chat.completion.chunk", "choices": choices, **extra})


ROLE_ONLY = chunk({"role": "assistant", "content": ""})
USAGE = chunk(
    None, usage={"prompt_tokens": 9, "completion_tokens": 3}, sglang_sim={"ttft_ms": 40.5, "e2e_ms": 70.0}
)


def record(
    events: list[tuple[str, float]], *, complete: bool = True, end: float = 1.0
) -> samples.RequestSample:
    recorder = StreamRecorder()
    for data, at in events:
        recorder.on_event(SSEEvent(data, at))
    sample = samples.RequestSample("r", 0, 0.0, 0, "", "", 0, 0, 8)
    recorder.fill(sample, 0.0, end, complete=complete)
    return sample


@pytest.fixture
def sglang_stream() -> list[tuple[str, float]]:
    """As SGLang writes it: the role-only chunk with the first token, tokens, finish, usage, [DONE]."""
    return [
        (ROLE_ONLY, 0.050),
        (chunk({"content": " a"}), 0.050),
        (chunk({"content": " b"}), 0.060),
        (chunk({"content": " c"}), 0.075),
        (chunk({}, finish_reason="length"), 0.076),
        (USAGE, 0.076),
        ("[DONE]", 0.077),
    ]


def test_ttft_is_the_first_text_chunk_never_the_role_only_one(sglang_stream: list) -> None:
    sample = record([(ROLE_ONLY, 0.010), *sglang_stream[1:]])
    assert sample.ok
    assert sample.ttft_ms == pytest.approx(50.0)
    assert sample.first_content_ms == pytest.approx(50.0)


def test_itl_tpot_tokens_and_server_timings(sglang_stream: list) -> None:
    sample = record(sglang_stream, end=0.080)
    assert sample.itl_ms == pytest.approx([10.0, 15.0])
    assert sample.output_tokens == 3 and sample.output_tokens_source == "usage"
    assert sample.tpot_ms == pytest.approx(25.0 / 2)
    assert sample.prompt_tokens == 9
    assert sample.server_ttft_ms == 40.5 and sample.server_e2e_ms == 70.0
    assert sample.e2e_ms == pytest.approx(80.0)


def test_without_usage_tokens_are_the_text_chunks(sglang_stream: list) -> None:
    sample = record([e for e in sglang_stream if e[0] != USAGE])
    assert sample.output_tokens == 3 and sample.output_tokens_source == "chunks"


def test_reasoning_chunks_count_for_ttft_and_separately() -> None:
    sample = record(
        [
            (chunk({"role": "assistant", "reasoning_content": " hmm"}), 0.020),
            (chunk({"reasoning_content": " so"}), 0.030),
            (chunk({"content": " answer"}), 0.045),
            ("[DONE]", 0.05),
        ]
    )
    assert sample.ok
    assert sample.ttft_ms == pytest.approx(20.0)
    assert sample.first_content_ms == pytest.approx(45.0)
    assert (sample.reasoning_chunks, sample.content_chunks) == (2, 1)


def test_a_single_chunk_answer_has_a_ttft_and_no_itl() -> None:
    sample = record([(chunk({"role": "assistant", "content": "all at once"}), 0.3), ("[DONE]", 0.31)])
    assert sample.ok and sample.ttft_ms == pytest.approx(300.0)
    assert sample.itl_ms == [] and sample.tpot_ms is None and sample.output_tokens == 1


def test_a_non_streamed_answer_is_one_complete_chunk() -> None:
    recorder = StreamRecorder()
    body = {
        "choices": [{"message": {"role": "assistant", "content": "x y"}}],
        "usage": {"completion_tokens": 2},
    }
    recorder.on_body(body, 0.2)
    sample = samples.RequestSample("r", 0, 0.0, 0, "", "", 0, 0, 8)
    recorder.fill(sample, 0.0, 0.2, complete=True)
    assert sample.ok and sample.ttft_ms == pytest.approx(200.0) and sample.output_tokens == 2


@pytest.mark.parametrize(
    ("events", "kind", "message"),
    [
        ([(ROLE_ONLY, 0.1), ("{not json", 0.2)], samples.MALFORMED, "not JSON"),
        ([(ROLE_ONLY, 0.1), ("[1, 2]", 0.2)], samples.MALFORMED, "not a JSON object"),
        ([(chunk({"content": "a"}), 0.1)], samples.MALFORMED, "without `data: [DONE]`"),
        (
            [(ROLE_ONLY, 0.1), (chunk({}, finish_reason="stop"), 0.2), ("[DONE]", 0.3)],
            samples.EMPTY,
            "no content",
        ),
        (
            [(chunk({"content": "a"}), 0.1), (json.dumps({"error": {"message": "boom"}}), 0.2)],
            samples.STREAM_ERROR,
            "boom",
        ),
        ([(json.dumps({"object": "error", "message": "bad"}), 0.1)], samples.STREAM_ERROR, "bad"),
    ],
    ids=["not-json", "not-object", "no-done", "empty", "error-object", "sglang-error-body"],
)
def test_broken_streams_fail_with_a_kind_and_a_message(events: list, kind: str, message: str) -> None:
    sample = record(events)
    assert not sample.ok
    assert sample.error == kind
    assert message in sample.error_detail


def test_a_cut_stream_keeps_its_timings_and_leaves_the_error_to_the_transport() -> None:
    sample = record(
        [(ROLE_ONLY, 0.1), (chunk({"content": "a"}), 0.1), (chunk({"content": "b"}), 0.15)], complete=False
    )
    assert not sample.ok and sample.error is None  # the caller sets `disconnect` or `timeout`
    assert sample.ttft_ms == pytest.approx(100.0) and sample.itl_ms == pytest.approx([50.0])
