"""One streamed chat completion, timed: send a prepared request, read the answer line by line, fill a
RequestSample. Errors never raise: they end up in the sample as an error kind and a detail for people."""

from __future__ import annotations

import json
import time

from . import samples
from .httpstream import HttpClient, Response, TransportError
from .payload import PreparedRequest
from .sse import MalformedStreamError, SSEParser
from .stream_metrics import StreamRecorder

CHAT_PATH = "/v1/chat/completions"
HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}
ERROR_BODY_LIMIT = 4096


def new_sample(request: PreparedRequest, request_id: str, worker: int) -> samples.RequestSample:
    return samples.RequestSample(
        request_id=request_id,
        worker=worker,
        start=time.time(),
        images=request.images,
        resolution=request.resolution,
        image_format=request.image_format,
        cache_hits=request.cache_hits,
        request_bytes=request.content_length,
        max_tokens=request.max_tokens,
    )


def run_chat(
    client: HttpClient, request: PreparedRequest, sample: samples.RequestSample
) -> samples.RequestSample:
    """Send `request`, fill `sample` (its `start` is set to the moment the request left)."""
    recorder = StreamRecorder()
    sample.start = time.time()
    sent_at = time.perf_counter()
    try:
        response = client.request("POST", CHAT_PATH, request.pieces, HEADERS)
    except TransportError as exc:
        sample.e2e_ms = (time.perf_counter() - sent_at) * 1000
        sample.error, sample.error_detail = exc.kind, exc.detail
        return sample
    sent_at = response.sent_at
    sample.status = response.status
    sample.connect_ms = response.connect_ms
    if response.first_byte_at is not None:
        sample.ttfb_ms = (response.first_byte_at - sent_at) * 1000
    complete = False
    try:
        _read_answer(response, recorder, sample)
        complete = True
    except TransportError as exc:
        sample.error, sample.error_detail = exc.kind, exc.detail
    except MalformedStreamError as exc:
        sample.error, sample.error_detail = samples.MALFORMED, str(exc)
    finally:
        sample.response_bytes = response.received
        response.close(reusable=complete)
    recorder.fill(sample, sent_at, time.perf_counter(), complete=complete and sample.error is None)
    return sample


def _read_answer(response: Response, recorder: StreamRecorder, sample: samples.RequestSample) -> None:
    content_type = response.headers.get("content-type", "")
    if response.status != 200:
        body = response.read(ERROR_BODY_LIMIT)
        sample.error = samples.http_error(response.status)
        sample.error_detail = f"HTTP {response.status} {response.reason}: {_error_message(body)}"
        return
    if content_type.startswith("text/event-stream"):
        parser = SSEParser()
        at = response.first_byte_at or time.perf_counter()
        for data, at in response.iter_body():
            for event in parser.feed(data, at):
                recorder.on_event(event)
            if recorder.failure is not None:
                return  # the close() that follows drops the connection
        for event in parser.close(at):
            recorder.on_event(event)
        return
    body = response.read()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        sample.error = samples.MALFORMED
        sample.error_detail = (
            f"expected an event stream, got {content_type or 'no content type'}: {body[:120]!r}"
        )
        return
    recorder.on_body(answer, time.perf_counter())


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:300] or "(empty body)"
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
    return text[:300]
