"""The resident process every sandbox runs: it serves any number of execs without leaking
descriptors, and the commands it runs inherit none of its own."""

from __future__ import annotations

import asyncio
import resource
import sys
from collections.abc import AsyncIterator

import pytest

from steward.sandbox import resident
from steward.sandbox.channel import LINE_LIMIT, ResidentChannel
from steward.sandbox.types import ExecRequest, ExecResult, Limits, Output

OPEN_FILES = 24


@pytest.fixture
async def channel() -> AsyncIterator[ResidentChannel]:
    """A resident in `serve` mode with a small open-files limit, as a sandbox would run it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", resident.__file__, "serve",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
        limit=LINE_LIMIT,
    )  # fmt: skip
    resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    assert process.stdin is not None and process.stdout is not None
    channel = ResidentChannel(process.stdout, process.stdin)
    await channel.ping()
    yield channel
    process.stdin.close()
    await process.wait()


async def collect(channel: ResidentChannel, argv: list[str]) -> tuple[bytes, ExecResult]:
    out = b""
    request = ExecRequest(argv, {"PATH": "/usr/bin:/bin"}, "/")
    async for event in channel.exec(request, Limits(open_files=OPEN_FILES)):
        if isinstance(event, Output):
            out += event.data
        else:
            return out, event
    raise AssertionError("no result")


async def test_many_more_execs_than_open_files_all_succeed(channel: ResidentChannel) -> None:
    for _ in range(OPEN_FILES * 4):
        out, result = await collect(channel, ["echo", "ok"])
        assert (out, result.exit_code) == (b"ok\n", 0)


async def test_a_command_inherits_only_stdin_stdout_and_stderr(channel: ResidentChannel) -> None:
    out, result = await collect(channel, ["ls", "/proc/self/fd"])
    assert result.exit_code == 0
    # The listing's own descriptor (3) is ls's, opened after exec.
    assert sorted(int(fd) for fd in out.split()) == [0, 1, 2, 3]


async def test_a_command_that_cannot_start_is_127_with_the_reason_and_serving_goes_on(
    channel: ResidentChannel,
) -> None:
    missing, result = await collect(channel, ["no-such-program"])
    assert result.exit_code == 127 and b"no-such-program" in missing
    request = ExecRequest(["true"], {"PATH": "/usr/bin:/bin"}, "/no/such/dir")
    events = [event async for event in channel.exec(request, Limits(open_files=OPEN_FILES))]
    assert isinstance(events[-1], ExecResult) and events[-1].exit_code == 127
    assert b"/no/such/dir" in b"".join(e.data for e in events if isinstance(e, Output))
    out, result = await collect(channel, ["sh", "-c", "pwd; ulimit -n; ulimit -Hn"])
    assert out.split() == [b"/", str(OPEN_FILES).encode(), str(OPEN_FILES).encode()]
