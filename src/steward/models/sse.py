"""An incremental Server-Sent Events parser over a byte stream, as the providers' streams speak it.

It follows the WHATWG event-stream rules: LF, CRLF and CR line ends, `:` comments, multi-line
`data:`, `event:`, `id:` and `retry:` fields, and dispatch on a blank line.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_sse"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event; `event` defaults to "message" as the spec says."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None


class SSEDecoder:
    """Feed bytes in any chunking; get complete events out.

    Lines are split on bytes before decoding, which is safe because no UTF-8 multi-byte sequence
    contains CR or LF; a trailing CR is held back in case the next chunk starts with LF.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._first_line = True
        self._event = ""
        self._data: list[str] = []
        self._last_event_id: str | None = None
        self._retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        for line in self._split_complete_lines():
            event = self.feed_line(line)
            if event is not None:
                events.append(event)
        return events

    def end_of_stream(self) -> list[ServerSentEvent]:
        """Settle a CR held back at the very end; a still unterminated event is discarded."""
        if not self._buffer.endswith(b"\r"):
            return []
        return self.feed(b"\n")  # the stream is over, so that CR was a whole line end

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

    def _split_complete_lines(self) -> Iterable[str]:
        lines: list[str] = []
        start = 0
        buffer = self._buffer
        size = len(buffer)
        index = 0
        while index < size:
            byte = buffer[index]
            if byte == 0x0A:  # LF
                lines.append(buffer[start:index].decode("utf-8", errors="replace"))
                start = index + 1
            elif byte == 0x0D:  # CR, alone or as the start of CRLF
                if index + 1 == size:
                    break  # wait for the next chunk to tell CR from CRLF
                lines.append(buffer[start:index].decode("utf-8", errors="replace"))
                if buffer[index + 1] == 0x0A:
                    index += 1
                start = index + 1
            index += 1
        self._buffer = buffer[start:]
        return lines

    def _dispatch(self) -> ServerSentEvent | None:
        event_type, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(
            event=event_type or "message",
            data="\n".join(data),
            id=self._last_event_id,
            retry_ms=self._retry_ms,
        )


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Events from a byte stream such as `httpx.Response.aiter_bytes()`.

    An event left unterminated when the stream ends is discarded, as the spec requires: a cut
    stream must not surface half an event.
    """
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.end_of_stream():
        yield event
