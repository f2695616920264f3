"""A stdio transport for MCP servers that bounds what a server can make Steward hold.

The SDK's `stdio_client` buffers a line of any length (a server printing 100 MB without a
newline is 100 MB of Steward's memory, grown by repeated string joins). This transport reads
raw bytes into one buffer, and a line longer than `max_line_bytes` is dropped while it streams
in: the request it answered (its id is read from the line's first bytes) fails with an error at
once, instead of the call waiting for its timeout. The server runs in a session of its own and
is stopped with its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

READ_CHUNK = 65_536
STOP_GRACE_S = 2.0
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")')

Streams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]
]


@dataclass(frozen=True)
class Overlong:
    """A line dropped for its length; its first bytes name the request it answered."""

    prefix: bytes


class _Lines:
    """Splits a byte stream into lines, never holding more than `limit` bytes of one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.dropping: bytes | None = None

    def feed(self, chunk: bytes) -> list[bytes | Overlong]:
        done: list[bytes | Overlong] = []
        while chunk:
            end = chunk.find(b"\n")
            piece, chunk = (chunk, b"") if end < 0 else (chunk[:end], chunk[end + 1 :])
            if self.dropping is None:
                self.buffer += piece
                if len(self.buffer) > self.limit:
                    self.dropping, self.buffer = bytes(self.buffer[:512]), bytearray()
            if end < 0:
                break
            done.append(bytes(self.buffer) if self.dropping is None else Overlong(self.dropping))
            self.buffer, self.dropping = bytearray(), None
        return done


class LineTooLong(Exception):
    """A stdio MCP server wrote a message over the size limit."""


@contextlib.asynccontextmanager
async def bounded_stdio(
    command: str, args: tuple[str, ...], env: dict[str, str], max_line_bytes: int
) -> AsyncIterator[Streams]:
    process = await asyncio.create_subprocess_exec(
        command,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=get_default_environment() | env,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout
    incoming, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, outgoing = anyio.create_memory_object_stream[SessionMessage](0)

    async def deliver(line: bytes) -> None:
        if not line.strip():
            return
        message: SessionMessage | Exception
        try:
            message = SessionMessage(types.jsonrpc_message_adapter.validate_json(line))
        except ValueError as exc:
            message = exc
        await incoming.send(message)

    async def reject(prefix: bytes) -> None:
        reason = f"the MCP server's message exceeds {max_line_bytes} bytes"
        found = _ID.search(prefix)
        if found is None:
            await incoming.send(LineTooLong(reason))
            return
        raw = found.group(1)
        request_id: Any = int(raw) if raw[:1] != b'"' else raw[1:-1].decode(errors="replace")
        error = types.ErrorData(code=types.INTERNAL_ERROR, message=reason)
        await incoming.send(
            SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error))
        )

    async def read() -> None:
        lines = _Lines(max_line_bytes)
        async with incoming:
            while chunk := await stdout.read(READ_CHUNK):
                for line in lines.feed(chunk):
                    await (reject(line.prefix) if isinstance(line, Overlong) else deliver(line))

    async def write() -> None:
        async with outgoing:
            async for message in outgoing:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                stdin.write(data.encode() + b"\n")
                await stdin.drain()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_ended_quietly, read)
            tasks.start_soon(_ended_quietly, write)
            try:
                yield read_stream, write_stream
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)
            await read_stream.aclose()
            await write_stream.aclose()


async def _ended_quietly(work: Any) -> None:
    """A pipe closing under a reader or writer is the server going away, not an error here:
    the session sees its streams end."""
    with contextlib.suppress(
        BrokenPipeError,
        ConnectionResetError,
        anyio.BrokenResourceError,
        anyio.ClosedResourceError,
    ):
        await work()


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Close stdin, give the server a moment, then end its whole process group."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        return
    except TimeoutError:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            return
        except TimeoutError:
            continue
