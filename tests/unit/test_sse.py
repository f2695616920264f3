"""The SSE parser: line endings, chunk boundaries, comments, multi-line data and ids."""

from __future__ import annotations

from collections.abc import AsyncIterator

from steward.models.sse import ServerSentEvent, SSEDecoder, aiter_sse


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
