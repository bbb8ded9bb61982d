"""One record per request, written raw as a JSON line (Locust's own statistics round times above 100 ms to
two significant digits, so exact percentiles come from these records)."""

from __future__ import annotations

import array
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

# Error kinds. `http_<status>` is built from the status code.
CONNECT = "connect"  # no connection to the host (refused, unknown name, connect timeout)
TIMEOUT = "timeout"  # no answer, or the stream stalled, within the request timeout
DISCONNECT = "disconnect"  # the connection closed before the response was complete
MALFORMED = "malformed"  # not an event stream, a data line that is not JSON, no `data: [DONE]`
STREAM_ERROR = "stream_error"  # the server sent an error object inside the stream
EMPTY = "empty"  # a complete stream without any content or reasoning text
CLIENT_OVERLOAD = "client_overload"  # open loop: an arrival was dropped, --max-in-flight was reached
CANCELLED = "cancelled"  # still running when the test ended; not counted as an error

SAMPLES_FILE = "samples.jsonl"


def http_error(status: int) -> str:
    return f"http_{status}"


@dataclass(slots=True)
class RequestSample:
    """Times are milliseconds from `start`, the moment the request was handed to the network (after its
    body was built); `start` and `scheduled` are Unix times in seconds."""

    request_id: str
    worker: int
    start: float
    images: int
    resolution: str  # "1920x1080", "mixed", or "" for a text-only request
    image_format: str  # "jpeg", "png", "mixed" or ""
    cache_hits: int  # images repeated from the hot set (profile's cache_hit_ratio)
    request_bytes: int
    max_tokens: int
    scheduled: float | None = None  # open loop: the planned arrival time
    lag_ms: float | None = None  # open loop: start - scheduled (client lateness, not part of TTFT)
    ok: bool = False
    error: str | None = None
    error_detail: str | None = None
    status: int | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None  # first chunk with content or reasoning text
    first_content_ms: float | None = None  # first chunk with content text (after any reasoning)
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    output_tokens: int | None = None
    output_tokens_source: str | None = None  # "usage" or "chunks"
    prompt_tokens: int | None = None
    content_chunks: int = 0
    reasoning_chunks: int = 0
    response_bytes: int = 0
    server_ttft_ms: float | None = None  # the serving server's own TTFT (simulator: sglang_sim.ttft_ms)
    server_e2e_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for key, value in record.items():
            if isinstance(value, float):
                record[key] = round(value, 3)
        record["itl_ms"] = [round(v, 3) for v in self.itl_ms]
        return record


class SampleLog:
    """The samples of a run, in memory for the statistics and appended to samples.jsonl as they come."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.records: list[dict] = []
        self._stream: TextIO | None = path.open("w", encoding="utf-8")

    def add(self, records: Iterable[dict]) -> None:
        if self._stream is None:
            return  # the run is over; late records (cancelled requests) are not part of it
        for record in records:
            self._stream.write(json.dumps(record, separators=(",", ":")))
            self._stream.write("\n")
            # Every inter-token latency of every request stays in memory for exact statistics: a float
            # array takes a quarter of a list's memory.
            self.records.append({**record, "itl_ms": array.array("d", record.get("itl_ms") or ())})
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def read_samples(path: Path) -> list[dict]:
    """The records of a run's samples.jsonl; a line that is not JSON names the file and line."""
    return list(iter_samples(path))


def iter_samples(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON sample ({exc.msg})") from exc
