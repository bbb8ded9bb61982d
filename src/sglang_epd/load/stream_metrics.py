"""From the events of an OpenAI chat-completions stream to the request's timings.

TTFT is the first chunk that carries text: `delta.content` or `delta.reasoning_content` (or `reasoning`)
that is a non-empty string. SGLang's role-only first chunk (`{"role": "assistant", "content": ""}`), the
finish chunk and the usage chunk carry none and never count. Every later text chunk gives one
inter-token latency. TPOT is (last text chunk - first text chunk) / (output tokens - 1), with the output
tokens from `usage.completion_tokens` when the server sent usage, else the number of text chunks.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from . import samples
from .sse import SSEEvent

DONE = "[DONE]"
REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass(frozen=True, slots=True)
class StreamFailure:
    kind: str
    detail: str


class StreamRecorder:
    """Feed it the events of one stream (`on_event`), then `finish` into a sample."""

    def __init__(self) -> None:
        self.text_times: list[float] = []
        self.first_content_at: float | None = None
        self.content_chunks = 0
        self.reasoning_chunks = 0
        self.usage: dict | None = None
        self.server: dict | None = None
        self.done = False
        self.failure: StreamFailure | None = None

    def on_event(self, event: SSEEvent) -> None:
        if self.failure is not None or self.done:
            return
        if event.data == DONE:
            self.done = True
            return
        try:
            chunk = json.loads(event.data)
        except ValueError:
            self.failure = StreamFailure(
                samples.MALFORMED, f"an SSE data line is not JSON: {event.data[:120]!r}"
            )
            return
        if not isinstance(chunk, dict):
            self.failure = StreamFailure(
                samples.MALFORMED, f"an SSE data line is not a JSON object: {chunk!r:.120}"
            )
            return
        self.on_chunk(chunk, event.at)

    def on_body(self, body: dict, at: float) -> None:
        """A non-streamed answer (a server that ignored `stream`): one chunk with `message`, complete."""
        self.on_chunk(body, at)
        self.done = True

    def on_chunk(self, chunk: dict, at: float) -> None:
        if "error" in chunk or chunk.get("object") == "error":
            error = chunk.get("error", chunk)
            message = error.get("message", error) if isinstance(error, dict) else error
            self.failure = StreamFailure(
                samples.STREAM_ERROR, f"the server sent an error in the stream: {message}"
            )
            return
        has_text = False
        for choice in chunk.get("choices") or ():
            delta = (choice.get("delta") or choice.get("message") or {}) if isinstance(choice, dict) else {}
            if _is_text(delta.get("content")):
                self.content_chunks += 1
                has_text = True
                if self.first_content_at is None:
                    self.first_content_at = at
            if any(_is_text(delta.get(name)) for name in REASONING_FIELDS):
                self.reasoning_chunks += 1
                has_text = True
        if has_text:
            self.text_times.append(at)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("sglang_sim"), dict):
            self.server = chunk["sglang_sim"]

    def fill(self, sample: samples.RequestSample, start: float, end: float, *, complete: bool) -> None:
        """Write the timings into `sample`. `start` and `end` are perf_counter times of sending and of the
        end of the response; `complete` is False when the response was cut short (the caller sets the
        transport error itself)."""

        def ms(at: float) -> float:
            return (at - start) * 1000

        sample.e2e_ms = ms(end)
        sample.content_chunks = self.content_chunks
        sample.reasoning_chunks = self.reasoning_chunks
        if self.text_times:
            sample.ttft_ms = ms(self.text_times[0])
            sample.itl_ms = [(b - a) * 1000 for a, b in itertools.pairwise(self.text_times)]
        if self.first_content_at is not None:
            sample.first_content_ms = ms(self.first_content_at)
        tokens = self.usage.get("completion_tokens") if self.usage else None
        if isinstance(tokens, int):
            sample.output_tokens, sample.output_tokens_source = tokens, "usage"
        elif self.text_times:
            sample.output_tokens, sample.output_tokens_source = len(self.text_times), "chunks"
        if self.usage and isinstance(self.usage.get("prompt_tokens"), int):
            sample.prompt_tokens = self.usage["prompt_tokens"]
        if sample.output_tokens and sample.output_tokens > 1 and len(self.text_times) > 1:
            sample.tpot_ms = (self.text_times[-1] - self.text_times[0]) * 1000 / (sample.output_tokens - 1)
        if self.server:
            sample.server_ttft_ms = _number(self.server.get("ttft_ms"))
            sample.server_e2e_ms = _number(self.server.get("e2e_ms"))
        if not complete:
            return
        failure = self.failure
        if failure is None and not self.done:
            failure = StreamFailure(samples.MALFORMED, "the stream ended without `data: [DONE]`")
        if failure is None and not self.text_times:
            failure = StreamFailure(samples.EMPTY, "the answer has no content or reasoning text")
        if failure is None:
            sample.ok = True
        else:
            sample.error, sample.error_detail = failure.kind, failure.detail


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
