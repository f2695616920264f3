"""The SSE parser: line endings, chunk boundaries, comments, multi-line data and ids."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from steward.models.sse import (
    ServerSentEvent,
    SSEDecoder,
    SSEEventSplitter,
    SSEEventTooLarge,
    aiter_sse,
)


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.end_of_stream()


def test_lf_crlf_and_cr_line_endings_all_end_lines() -> None:
    for newline in (b"\n", b"\r\n", b"\r"):
        stream = b"event: ping" + newline + b"data: {}" + newline + newline

        assert decode(stream) == [ServerSentEvent(event="ping", data="{}")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    events = decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")

    assert [e.data for e in events] == ["a", "b"]


def test_events_survive_any_chunking_including_inside_utf8_characters() -> None:
    stream = 'event: message_start\ndata: {"text": "héllo 👋"}\n\n'.encode()

    events = decode(*(stream[i : i + 1] for i in range(len(stream))))

    assert events == [ServerSentEvent(event="message_start", data='{"text": "héllo 👋"}')]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert decode(b"data: first\ndata:second\ndata\n\n")[0].data == "first\nsecond\n"


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = decode(b": keep-alive\n\n: another\nfoo: bar\ndata: x\n\n")

    assert events == [ServerSentEvent(data="x")]


def test_blank_line_without_data_dispatches_nothing_and_resets_the_event_name() -> None:
    events = decode(b"event: error\n\ndata: x\n\n")

    assert events == [ServerSentEvent(event="message", data="x")]


def test_last_event_id_and_retry_carry_over_to_later_events() -> None:
    events = decode(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")

    assert [(e.id, e.retry_ms) for e in events] == [("7", 1500), ("7", 1500), ("", 1500)]


def test_leading_byte_order_mark_is_dropped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [ServerSentEvent(data="x")]


async def test_unterminated_last_event_of_a_cut_stream_is_discarded() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: whole\n\n"
        yield b"data: half"

    events = [event async for event in aiter_sse(chunks())]

    assert [e.data for e in events] == ["whole"]


def _feed_one_big_event(decoder: SSEDecoder, size: int, chunk: int) -> list[ServerSentEvent]:
    stream = b"data: " + b"x" * size + b"\n\n"
    events: list[ServerSentEvent] = []
    for i in range(0, len(stream), chunk):
        events += decoder.feed(stream[i : i + chunk])
    return events


def test_a_multi_megabyte_event_fed_in_small_chunks_costs_linear_work() -> None:
    costs = {}
    for size in (1 << 20, 4 << 20):
        decoder = SSEDecoder()
        (event,) = _feed_one_big_event(decoder, size, 4096)
        assert len(event.data) == size
        costs[size] = decoder.work_bytes

    # Each byte is scanned and copied a bounded number of times, however it was chunked: four
    # times the input is about four times the work (a rescan per chunk would be sixteen).
    assert costs[1 << 20] <= 3 * (1 << 20) + 64
    assert costs[4 << 20] <= 3 * (4 << 20) + 64


def test_an_event_larger_than_the_cap_is_refused_with_a_clear_error() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"data: " + b"a" * 600 + b"\n")

    with pytest.raises(SSEEventTooLarge, match="1000 bytes"):
        decoder.feed(b"data: " + b"b" * 300 + b"\ndata: " + b"c" * 200)
    assert decoder.work_bytes < 2000  # refused before reading further


def test_an_unterminated_line_past_the_cap_is_refused_before_its_end_arrives() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    for _ in range(9):
        decoder.feed(b"y" * 100)

    with pytest.raises(SSEEventTooLarge):
        decoder.feed(b"y" * 101)


def test_the_cap_counts_one_event_and_starts_over_after_it() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    events = []
    for _ in range(20):
        events += decoder.feed(b"data: " + b"z" * 600 + b"\n\n")

    assert len(events) == 20


def split(splitter: SSEEventSplitter, stream: bytes, chunk: int) -> list[bytes]:
    events: list[bytes] = []
    for i in range(0, len(stream), chunk):
        events += splitter.feed(stream[i : i + chunk])
    last = splitter.end_of_stream()
    return events + ([last] if last else [])


def test_the_raw_splitter_gives_back_every_byte_as_whole_events_under_any_chunking() -> None:
    stream = (
        b": hi\r\n\r\nevent: a\r\ndata: 1\r\n\r\ndata: 2\n\ndata: 3\r\rdata: 4\n\r\n"
        b'data: {"t": "h\xc3\xa9llo"}\n\ndata: cut'
    )
    expected = [
        b": hi\r\n\r\n",
        b"event: a\r\ndata: 1\r\n\r\n",
        b"data: 2\n\n",
        b"data: 3\r\r",
        b"data: 4\n\r\n",
        b'data: {"t": "h\xc3\xa9llo"}\n\n',
        b"data: cut",
    ]
    for size in (1, 2, 3, 5, 7, len(stream)):
        assert split(SSEEventSplitter(), stream, size) == expected, size


def test_the_raw_splitter_reads_a_multi_megabyte_event_in_linear_work() -> None:
    costs = {}
    for size in (1 << 20, 4 << 20):
        splitter = SSEEventSplitter()
        stream = b"data: " + b"x" * size + b"\n\n"
        (event,) = split(splitter, stream, 4096)
        assert event == stream
        costs[size] = splitter.work_bytes

    assert costs[1 << 20] <= 4 * (1 << 20) + 64
    assert costs[4 << 20] <= 4 * (4 << 20) + 64


def test_the_raw_splitter_refuses_an_event_past_its_cap() -> None:
    splitter = SSEEventSplitter(max_event_bytes=1000)
    splitter.feed(b"data: small\n\n" + b"data: " + b"a" * 600 + b"\n")

    with pytest.raises(SSEEventTooLarge):
        splitter.feed(b"data: " + b"b" * 600 + b"\n")
