"""Server-sent events parsed line by line, as the bytes arrive.

The WHATWG format: `field: value` lines, a blank line ends an event, lines starting with `:` are comments,
several `data:` lines of one event are joined with newlines. Lines end with LF or CRLF (a lone CR is not
treated as a line end). Each event carries the arrival time of its first `data:` line, so a token is
timed when its line is complete, never when some read buffer happens to fill up.
"""

from __future__ import annotations

from dataclasses import dataclass


class MalformedStreamError(ValueError):
    """The body is not a readable event stream (e.g. not UTF-8)."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    at: float  # arrival time of the event's first data line (time.perf_counter)


class SSEParser:
    def __init__(self) -> None:
        self._partial = b""
        self._data: list[str] = []
        self._data_at = 0.0

    def feed(self, data: bytes, at: float) -> list[SSEEvent]:
        """Parse the bytes that arrived at `at`; return the events they completed."""
        buffer = self._partial + data if self._partial else data
        lines = buffer.split(b"\n")
        self._partial = lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line[:-1] if line.endswith(b"\r") else line, at, events)
        return events

    def close(self, at: float) -> list[SSEEvent]:
        """The stream ended: an unterminated last line and an event without its blank line still count."""
        events: list[SSEEvent] = []
        if self._partial:
            self._line(self._partial.rstrip(b"\r"), at, events)
            self._partial = b""
        self._dispatch(events)
        return events

    def _line(self, line: bytes, at: float, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if name != b"data":
            return  # event:, id:, retry: and unknown fields carry nothing a chat stream needs
        if value.startswith(b" "):
            value = value[1:]
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedStreamError(f"an SSE data line is not UTF-8: {value[:60]!r}") from exc
        if not self._data:
            self._data_at = at
        self._data.append(text)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(SSEEvent("\n".join(self._data), self._data_at))
            self._data = []
