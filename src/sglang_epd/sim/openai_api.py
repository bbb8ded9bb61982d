"""The OpenAI chat-completions wire format as SGLang 0.5.23 writes it (docs/simulator.md, "Streaming"),
held byte for byte to SGLang's own builders by tests/fidelity/test_openai_wire.py.

A stream is `data: {json}\\n\\n` events: a first chunk with the role (srt/entrypoints/openai/sse_utils.py,
build_sse_content: every delta carries `reasoning_content`, null here), one chunk per token, a chunk with
only the finish_reason, a usage chunk with empty `choices` only when `stream_options.include_usage` is set
(or the server runs with --stream-response-default-include-usage), then `data: [DONE]`. A request that fails
after validation is answered 200 with an error event, then `data: [DONE]` (serving_chat.py,
_generate_chat_stream; serving_base.py, create_streaming_error_response). The simulator adds a
`sglang_sim` object to the last JSON chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import SimRequestError

TOKEN_TEXT = " sim"  # every generated token; the simulator never produces meaningful text


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def sse(obj: Any) -> bytes:
    return f"data: {dumps(obj)}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"


def _optional_int(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimRequestError(f"{name} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class ChatRequest:
    body: dict
    request_id: str
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int
    bootstrap_host: str | None
    bootstrap_port: int | None
    bootstrap_room: int | None

    @property
    def has_bootstrap(self) -> bool:
        return self.bootstrap_host is not None and self.bootstrap_room is not None


def parse_chat_request(
    body: Any, *, served_model: str, default_max_tokens: int, default_usage: bool
) -> ChatRequest:
    """Validate the fields the simulator uses; everything else in the body is ignored."""
    if not isinstance(body, dict):
        raise SimRequestError("the request body must be a JSON object")
    if "messages" not in body:
        raise SimRequestError("messages is required")
    # The PD router may rewrite max_tokens as max_completion_tokens: take either.
    max_tokens = _optional_int(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens")
    if max_tokens is None:
        max_tokens = default_max_tokens
    if max_tokens < 1:
        raise SimRequestError(f"max_tokens must be at least 1, got {max_tokens}")
    stream_options = body.get("stream_options") or {}
    include_usage = (
        bool(stream_options.get("include_usage", default_usage))
        if isinstance(stream_options, dict)
        else default_usage
    )
    host = body.get("bootstrap_host")
    if host is not None and not isinstance(host, str):
        raise SimRequestError("bootstrap_host must be a string")
    port = _optional_int(body, "bootstrap_port")
    room = _optional_int(body, "bootstrap_room")
    rid = body.get("rid")
    return ChatRequest(
        body=body,
        request_id=rid if isinstance(rid, str) and rid else uuid.uuid4().hex,
        model=body.get("model") or served_model,
        stream=bool(body.get("stream", False)),
        include_usage=include_usage,
        max_tokens=max_tokens,
        bootstrap_host=host,
        bootstrap_port=port,
        bootstrap_room=room,
    )


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    """protocol.py UsageInfo, serialized."""
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
        "completion_tokens_details": None,
    }


def stream_error(error: SimRequestError) -> bytes:
    """The in-stream error event: `json.dumps` with its default separators, as SGLang writes it."""
    body = {"object": "error", "message": error.message, "type": error.status_name, "param": None}
    return f"data: {json.dumps({'error': {**body, 'code': error.status}})}\n\n".encode()


class ChunkWriter:
    """Builds the JSON objects of one streamed response (all chunks share id, created and model)."""

    def __init__(self, request: ChatRequest) -> None:
        self.id = f"chatcmpl-{request.request_id}"
        self.model = request.model
        self.created = int(time.time())

    def _chunk(self, choices: list[dict], **extra: Any) -> dict:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        chunk.update({k: v for k, v in extra.items() if v is not None})
        return chunk

    @staticmethod
    def _choice(delta: dict, finish_reason: str | None = None) -> dict:
        return {
            "index": 0,
            "delta": {"reasoning_content": None, **delta},  # sse_utils.py StreamDelta: always serialized
            "logprobs": None,
            "finish_reason": finish_reason,
            "matched_stop": None,
        }

    def role(self) -> dict:
        return self._chunk([self._choice({"role": "assistant", "content": ""})])

    def content(self, text: str) -> dict:
        return self._chunk([self._choice({"content": text})])

    def finish(self, finish_reason: str, sim: dict | None = None) -> dict:
        return self._chunk([self._choice({}, finish_reason)], sglang_sim=sim)

    def usage(self, prompt_tokens: int, completion_tokens: int, sim: dict | None = None) -> dict:
        return self._chunk([], usage=usage(prompt_tokens, completion_tokens), sglang_sim=sim)


def completion(
    request: ChatRequest, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int
) -> dict:
    """A non-streaming chat.completion body."""
    return {
        "id": f"chatcmpl-{request.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "reasoning_content": None,
                    "tool_calls": None,
                },
                "logprobs": None,
                "finish_reason": finish_reason,
                "matched_stop": None,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }
