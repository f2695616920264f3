"""A development-only backend: a plain subprocess with rlimits and timeouts. It ISOLATES NOTHING.

Commands run as Steward's own user with full access to its files and network. It refuses to
start unless `sandbox_allow_unisolated` is set, and logs a warning for every sandbox it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator

from steward.errors import SandboxStateError, SandboxUnavailable
from steward.sandbox import resident
from steward.sandbox.channel import LINE_LIMIT, ResidentChannel
from steward.sandbox.types import ExecEvent, ExecRequest, Instance, SandboxSpec, StandbyMode

log = logging.getLogger("steward.sandbox")
WARNING = (
    "sandbox backend 'process' ISOLATES NOTHING: code runs as this server's user with its "
    "files and network. Use it for development only."
)


class ProcessBackend:
    name = "process"
    isolated = False
    standby_modes: tuple[StandbyMode, ...] = ()

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def unavailable_reason(self) -> str | None:
        if not self.enabled:
            return (
                "the 'process' backend isolates nothing and is disabled; set "
                "STEWARD_SANDBOX_ALLOW_UNISOLATED=1 to use it for development"
            )
        return None

    async def start(self, spec: SandboxSpec) -> Instance:
        reason = self.unavailable_reason()
        if reason:
            raise SandboxUnavailable(reason)
        log.warning("%s (sandbox %s)", WARNING, spec.id)
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", resident.__file__, "serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=spec.work_dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            start_new_session=True,
            limit=LINE_LIMIT,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        instance = ProcessInstance(spec, process, ResidentChannel(process.stdout, process.stdin))
        await instance.channel.ping()
        return instance


class ProcessInstance:
    def __init__(
        self, spec: SandboxSpec, process: asyncio.subprocess.Process, channel: ResidentChannel
    ) -> None:
        self.spec = spec
        self.process = process
        self.channel = channel

    async def exec(self, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        # No namespace: /work means the sandbox's directory on the host.
        cwd = request.cwd.replace("/work", str(self.spec.work_dir), 1)
        limits = self.spec.limits
        request = ExecRequest(request.argv, request.env, cwd, request.stdin, request.timeout_s)
        async for event in self.channel.exec(request, limits):
            yield event

    async def standby(self, mode: StandbyMode) -> None:
        raise SandboxStateError("the 'process' backend has no standby")

    async def resume(self) -> None:
        return None

    def cpu_seconds(self) -> float:
        return 0.0  # no cgroup to account it; per-exec CPU time is still reported

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process.returncode is None else []

    async def destroy(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        await asyncio.to_thread(shutil.rmtree, self.spec.work_dir, ignore_errors=True)
