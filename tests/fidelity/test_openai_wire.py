"""The simulator's streamed chat events against the ones SGLang's own code builds, byte for byte.

tests/fidelity/real/sse_chunks.py builds each event with SGLang 0.5.23's functions (sse_utils.py
build_sse_content, protocol.py ChatCompletionStreamResponse, serving_base.py
create_streaming_error_response); the simulator's come from sglang_epd/sim/openai_api.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from sglang_epd.sim.errors import SimRequestError
from sglang_epd.sim.openai_api import ChunkWriter, parse_chat_request, sse, stream_error

from .real_sglang import run_driver

SPEC = {"id": "chatcmpl-r1", "created": 1764633600, "model": "qwen2.5-vl-7b", "prompt_tokens": 2761,
        "completion_tokens": 8, "error": "encoder http://10.0.0.5:30002 failed"}  # fmt: skip


def sglang_events(python: Path) -> dict[str, str]:
    return run_driver(python, "sse_chunks.py", stdin=json.dumps(SPEC))  # type: ignore[return-value]


def simulator_events() -> dict[str, str]:
    chat = parse_chat_request(
        {"messages": [], "model": SPEC["model"], "rid": "r1", "stream": True},
        served_model=SPEC["model"],
        default_max_tokens=8,
        default_usage=False,
    )
    writer = ChunkWriter(chat)
    writer.created = SPEC["created"]
    return {
        name: event.decode()
        for name, event in {
            "role": sse(writer.role()),
            "content": sse(writer.content(" sim")),
            "finish": sse(writer.finish("length")),
            "usage": sse(writer.usage(SPEC["prompt_tokens"], SPEC["completion_tokens"])),
            "error": stream_error(SimRequestError(SPEC["error"], status=500)),
        }.items()
    }


def test_stream_events_are_sglangs_byte_for_byte(sglang_python: Path) -> None:
    real, simulated = sglang_events(sglang_python), simulator_events()
    for name in real:
        assert simulated[name] == real[name], name
    assert json.loads(real["role"].removeprefix("data: "))["choices"][0]["delta"] == {
        "reasoning_content": None,
        "role": "assistant",
        "content": "",
    }
    assert json.loads(real["error"].removeprefix("data: "))["error"]["type"] == "INTERNAL_SERVER_ERROR"
