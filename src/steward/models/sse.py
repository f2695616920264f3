"""Incremental Server-Sent Events parsing over a byte stream, as the providers' streams speak it.

It follows the WHATWG event-stream rules: LF, CRLF and CR line ends, `:` comments, multi-line
`data:`, `event:`, `id:` and `retry:` fields, and dispatch on a blank line. Work is linear in the
bytes received however the network chunks them (each byte is scanned once, and copied once more
when a line spans chunks), and one event is capped in size, so a hostile or broken upstream can
neither stall the event loop nor exhaust memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from steward.errors import ModelStreamError

__all__ = [
    "MAX_EVENT_BYTES",
    "SSEDecoder",
    "SSEEventSplitter",
    "SSEEventTooLarge",
    "ServerSentEvent",
    "aiter_sse",
]

# Far above any provider's event (a large tool-call delta is kilobytes), and small enough that a
# stream without blank lines is refused before it costs real memory.
MAX_EVENT_BYTES = 16 * 1024 * 1024
_CR = 0x0D
_LF = 0x0A
_BLANK_LINES = frozenset({b"\n", b"\r\n", b"\r"})


class SSEEventTooLarge(ModelStreamError):
    """One event of the stream grew past the size cap before it ended."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"an event of the model stream exceeded {limit} bytes without ending; "
            "the stream was abandoned",
            retryable=False,
        )
        self.limit = limit


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event; `event` defaults to "message" as the spec says."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None


class _LineReader:
    """Complete lines (terminator included) out of byte chunks, in one pass.

    Lines are split on bytes before decoding, which is safe because no UTF-8 multi-byte sequence
    contains CR or LF. A CR that ends a chunk is held back until the next chunk tells CR from
    CRLF. `work_bytes` counts every byte scanned or copied, so tests can bound the work.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._held_cr = False
        self.work_bytes = 0

    @property
    def pending_bytes(self) -> int:
        return self._partial_size

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        self.work_bytes += len(chunk)  # splitlines scans the chunk once, in C
        lines: list[bytes] = []
        pieces = chunk.splitlines(keepends=True)
        if self._held_cr:
            self._held_cr = False
            if pieces[0] == b"\n":  # the held CR and this LF are one CRLF
                self._partial.append(pieces.pop(0))
            lines.append(self._take_partial())
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            end = piece[-1]
            if end == _LF or (end == _CR and index < last):
                lines.append(self._take_partial(piece) if self._partial else piece)
                continue
            self._partial.append(piece)
            self._partial_size += len(piece)
            self._held_cr = end == _CR
            if self._partial_size > self.max_line_bytes:
                raise SSEEventTooLarge(self.max_line_bytes)
        return lines

    def end_of_stream(self) -> bytes:
        """What is left: a held-back CR line, or an unterminated last line."""
        self._held_cr = False
        return self._take_partial() if self._partial else b""

    def _take_partial(self, end: bytes = b"") -> bytes:
        if end:
            self._partial.append(end)
        line = b"".join(self._partial)
        self.work_bytes += len(line)
        self._partial = []
        self._partial_size = 0
        return line


class SSEDecoder:
    """Feed bytes in any chunking; get complete events out."""

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._lines = _LineReader(max_event_bytes)
        self._event_bytes = 0
        self._first_line = True
        self._event = ""
        self._data: list[str] = []
        self._last_event_id: str | None = None
        self._retry_ms: int | None = None

    @property
    def work_bytes(self) -> int:
        return self._lines.work_bytes

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for raw in self._lines.feed(chunk):
            event = self._feed_raw_line(raw)
            if event is not None:
                events.append(event)
        if self._event_bytes + self._lines.pending_bytes > self.max_event_bytes:
            raise SSEEventTooLarge(self.max_event_bytes)
        return events

    def end_of_stream(self) -> list[ServerSentEvent]:
        """Settle a CR held back at the very end; a still unterminated event is discarded."""
        last = self._lines.end_of_stream()
        if not last.endswith(b"\r"):
            return []
        event = self._feed_raw_line(last)  # the stream is over, so that CR was a whole line end
        return [] if event is None else [event]

    def _feed_raw_line(self, raw: bytes) -> ServerSentEvent | None:
        self._event_bytes += len(raw)
        if self._event_bytes > self.max_event_bytes:
            raise SSEEventTooLarge(self.max_event_bytes)
        return self.feed_line(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))

    def feed_line(self, line: str) -> ServerSentEvent | None:
        """Process one line without its terminator; returns an event when a blank line ends one."""
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            # The spec ignores ids containing NUL, since they could not be sent back in a header.
            if "\x00" not in value:
                self._last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event_type, data = self._event, self._data
        self._event, self._data = "", []
        self._event_bytes = 0
        if not data:
            return None
        return ServerSentEvent(
            event=event_type or "message",
            data="\n".join(data),
            id=self._last_event_id,
            retry_ms=self._retry_ms,
        )


class SSEEventSplitter:
    """Whole events as their raw bytes (lines and the blank line that ends them, exactly as
    received), for a proxy that relays the stream untouched while it reads it."""

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._lines = _LineReader(max_event_bytes)
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def work_bytes(self) -> int:
        return self._lines.work_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        events: list[bytes] = []
        for line in self._lines.feed(chunk):
            self._parts.append(line)
            if line in _BLANK_LINES:
                events.append(self._take())
            else:
                self._size += len(line)
        if self._size + self._lines.pending_bytes > self.max_event_bytes:
            raise SSEEventTooLarge(self.max_event_bytes)
        return events

    def end_of_stream(self) -> bytes:
        """The bytes of an event the stream left unterminated (b"" when there are none)."""
        last = self._lines.end_of_stream()
        if last:
            self._parts.append(last)
        return self._take() if self._parts else b""

    def _take(self) -> bytes:
        event = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._lines.work_bytes += len(event)
        self._parts = []
        self._size = 0
        return event


async def aiter_sse(
    chunks: AsyncIterable[bytes], *, max_event_bytes: int = MAX_EVENT_BYTES
) -> AsyncIterator[ServerSentEvent]:
    """Events from a byte stream such as `httpx.Response.aiter_bytes()`.

    An event left unterminated when the stream ends is discarded, as the spec requires: a cut
    stream must not surface half an event.
    """
    decoder = SSEDecoder(max_event_bytes=max_event_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.end_of_stream():
        yield event
