"""The host side of the resident process's protocol: JSON lines in, output chunks and a result out.

Shared by every backend; it caps output (the rest is dropped, not buffered) and turns a silent
or dead resident into an error instead of a hang.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from steward.errors import SandboxStateError
from steward.sandbox.types import ExecEvent, ExecRequest, ExecResult, Limits, Output

# A resident that misses its own deadline by this much is stuck (or frozen) and gets killed.
GRACE_S = 5.0
LINE_LIMIT = 1 << 20


def encode_request(request: ExecRequest, limits: Limits) -> bytes:
    message = {
        "argv": request.argv,
        "env": request.env,
        "cwd": request.cwd,
        "stdin": base64.b64encode(request.stdin).decode(),
        "timeout_s": request.timeout_s,
        "rlimits": {"nofile": limits.open_files, "core": 0},
    }
    return json.dumps(message).encode() + b"\n"


async def read_events(
    reader: asyncio.StreamReader, request: ExecRequest, limits: Limits
) -> AsyncIterator[ExecEvent]:
    """Yield `Output` chunks (capped per stream) and finally the `ExecResult`."""
    deadline = asyncio.get_running_loop().time() + request.timeout_s + GRACE_S
    sent = {"stdout": 0, "stderr": 0}
    truncated = False
    while True:
        line = await _readline(reader, deadline)
        message: dict[str, Any] = json.loads(line)
        if "out" in message:
            stream = message["out"]
            data = base64.b64decode(message["data"])
            room = limits.max_output_bytes - sent[stream]
            if len(data) > room:
                truncated = True
                data = data[: max(room, 0)]
            if data:
                sent[stream] += len(data)
                yield Output(stream, data)
        elif "result" in message:
            result = message["result"]
            yield ExecResult(
                exit_code=int(result["exit_code"]),
                wall_s=float(result["wall_s"]),
                cpu_s=float(result["cpu_s"]),
                timed_out=bool(result["timed_out"]),
                truncated=truncated,
            )
            return


async def _readline(reader: asyncio.StreamReader, deadline: float) -> bytes:
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=max(remaining, 0.001))
    except TimeoutError as exc:
        raise SandboxStateError("the sandbox stopped answering and was killed") from exc
    except ValueError as exc:  # a line over the reader's limit
        raise SandboxStateError("the sandbox sent a malformed message") from exc
    if not line.endswith(b"\n"):
        raise SandboxStateError("the sandbox's resident process died")
    return line


class ResidentChannel:
    """Requests to a resident (`serve` mode) process over its stdin/stdout, one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        # An exec whose reader went away mid-stream: its remaining events are skipped first.
        self._unfinished: ExecRequest | None = None

    async def exec(self, request: ExecRequest, limits: Limits) -> AsyncIterator[ExecEvent]:
        async with self._lock:
            if self._unfinished is not None:
                async for _ in read_events(self._reader, self._unfinished, limits):
                    pass
                self._unfinished = None
            try:
                self._writer.write(encode_request(request, limits))
                await self._writer.drain()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise SandboxStateError("the sandbox's resident process died") from exc
            self._unfinished = request
            async for event in read_events(self._reader, request, limits):
                if isinstance(event, ExecResult):
                    self._unfinished = None
                yield event

    async def ping(self, timeout_s: float = 10.0) -> int:
        """The resident's pid inside the sandbox, once it is ready."""
        async with self._lock:
            self._writer.write(b'{"op": "ping"}\n')
            await self._writer.drain()
            deadline = asyncio.get_running_loop().time() + timeout_s
            line = await _readline(self._reader, deadline)
            return int(json.loads(line)["pong"])
