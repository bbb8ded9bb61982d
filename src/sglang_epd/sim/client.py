"""Small helpers to talk to simulated (or real) SGLang servers: build chat bodies with images, read an
SSE or JSON chat answer with its `sglang_sim` timings, wait for /health. Not a load generator."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from PIL import Image

from ..load.sse import SSEParser
from ..waiting import http_status, wait_for
from .generation import TIMINGS_HEADER

T = TypeVar("T")


def image_bytes(width: int, height: int, fmt: str = "PNG", seed: int = 0) -> bytes:
    """A plain image of the given size; `seed` changes its colour, hence its content hash."""
    color = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(data: bytes, fmt: str = "png") -> str:
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(data).decode()}"


def chat_body(
    text: str,
    images: Sequence[str] = (),
    *,
    max_tokens: int = 8,
    stream: bool = False,
    include_usage: bool = False,
    model: str = "default",
    **extra: object,
) -> dict:
    """An OpenAI chat body: one user message with `text` and the image URLs in order."""
    content: list[dict] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    content.append({"type": "text", "text": text})
    body: dict = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream and include_usage:
        body["stream_options"] = {"include_usage": True}
    body.update(extra)
    return body


@dataclass
class ChatResult:
    status: int
    headers: dict[str, str]
    chunks: list[dict] = field(default_factory=list)  # streamed JSON chunks, in order
    done: bool = False  # `data: [DONE]` was received
    body: dict | None = None  # the JSON body of a non-streamed answer or of an error
    client_ttft_ms: float | None = None  # request sent -> first chunk with content
    client_e2e_ms: float | None = None

    @property
    def text(self) -> str:
        if self.body and "choices" in self.body:
            return self.body["choices"][0]["message"]["content"]
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c["choices"])

    @property
    def usage(self) -> dict | None:
        if self.body is not None:
            return self.body.get("usage")
        return next((c["usage"] for c in self.chunks if c.get("usage")), None)

    @property
    def sim(self) -> dict | None:
        """The server's timings: the header of a JSON answer, the last chunk of a stream."""
        if TIMINGS_HEADER in self.headers:
            return json.loads(self.headers[TIMINGS_HEADER])
        return next((c["sglang_sim"] for c in reversed(self.chunks) if "sglang_sim" in c), None)

    @property
    def error(self) -> str | None:
        """The message of an error body, or of an error event in the stream (SGLang answers 200 and
        streams the error when a request fails after validation)."""
        if self.body and self.body.get("object") == "error":
            return self.body.get("message")
        streamed = next((c["error"] for c in self.chunks if "error" in c), None)
        return str(streamed.get("message", streamed)) if isinstance(streamed, dict) else None


async def post_chat(session: aiohttp.ClientSession, url: str, body: dict, timeout: float = 60) -> ChatResult:
    """POST /v1/chat/completions to `url` (a server's base URL) and read the whole answer."""
    start = time.perf_counter()
    async with session.post(
        f"{url}/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        result = ChatResult(response.status, dict(response.headers))
        if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
            result.body = await response.json(content_type=None)
            result.client_e2e_ms = (time.perf_counter() - start) * 1000
            return result
        parser = SSEParser()
        async for raw in response.content:
            for event in parser.feed(raw, time.perf_counter()):
                if event.data == "[DONE]":
                    result.done = True
                    continue
                chunk = json.loads(event.data)
                result.chunks.append(chunk)
                has_text = any(
                    c["delta"].get("content") or c["delta"].get("reasoning_content")
                    for c in chunk.get("choices", [])
                )
                if has_text and result.client_ttft_ms is None:
                    result.client_ttft_ms = (event.at - start) * 1000
        result.client_e2e_ms = (time.perf_counter() - start) * 1000
        return result


def wait_until_healthy(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Poll `url`/health until 200; fail early if `process` exits."""

    def healthy() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode} before it was healthy")
        return http_status(f"{url}/health") == 200

    wait_for(healthy, timeout, f"{url}/health to return 200")
