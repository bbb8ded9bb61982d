"""SSE parsing line by line: events, framing, timing of each event."""

from __future__ import annotations

import pytest

from sglang_epd.load.sse import MalformedStreamError, SSEEvent, SSEParser


def feed_all(parser: SSEParser, pieces: list[tuple[bytes, float]]) -> list[SSEEvent]:
    events = [event for data, at in pieces for event in parser.feed(data, at)]
    return events + parser.close(pieces[-1][1])


def test_events_end_at_blank_lines_and_keep_the_time_of_their_data_line() -> None:
    events = feed_all(SSEParser(), [(b'data: {"a":1}\n\ndata: [DO', 1.0), (b"NE]\n", 2.0), (b"\n", 3.0)])
    assert events == [SSEEvent('{"a":1}', 1.0), SSEEvent("[DONE]", 2.0)]


def test_a_line_split_over_reads_is_timed_when_it_is_complete() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: hel", 1.0) == []
    assert parser.feed(b"lo\n\n", 2.5) == [SSEEvent("hello", 2.5)]


def test_crlf_comments_other_fields_and_multi_line_data() -> None:
    stream = b": keep-alive\r\nevent: message\r\nid: 7\r\ndata: one\r\ndata:two\r\nretry: 10\r\n\r\n"
    assert feed_all(SSEParser(), [(stream, 1.0)]) == [SSEEvent("one\ntwo", 1.0)]


def test_the_end_of_the_stream_dispatches_an_unterminated_event() -> None:
    assert feed_all(SSEParser(), [(b"data: last", 4.0)]) == [SSEEvent("last", 4.0)]


def test_lines_without_data_make_no_event() -> None:
    assert feed_all(SSEParser(), [(b"\n\n: comment\n\nnot a field\n\n", 1.0)]) == []


def test_a_data_line_that_is_not_utf8_is_malformed() -> None:
    with pytest.raises(MalformedStreamError, match="not UTF-8"):
        SSEParser().feed(b"data: \xff\xfe\n\n", 1.0)
