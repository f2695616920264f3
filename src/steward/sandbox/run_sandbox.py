"""`ctx.sandbox()`: a sandbox inside a run, where creating, each exec, each file access and
deleting are journaled steps, so a resumed run replays recorded results instead of re-running.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from steward.durable.types import JsonObject
from steward.sandbox.manager import Completed, CreateOptions, SandboxManager, argv_for
from steward.sandbox.types import ExecRequest, Limits


class SandboxHost(Protocol):
    """What a run sandbox needs from its run (a `steward.Context` is one): who it belongs to,
    the sandbox manager, and a way to run each effect as one journaled step."""

    @property
    def run_id(self) -> str: ...

    @property
    def tenant_id(self) -> str: ...

    @property
    def sandboxes(self) -> Any: ...

    async def effect(self, name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject: ...


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @classmethod
    def from_completed(cls, completed: Completed) -> SandboxResult:
        return cls(
            stdout=completed.stdout.decode(errors="replace"),
            stderr=completed.stderr.decode(errors="replace"),
            **dataclasses.asdict(completed.result),
        )


class RunSandbox:
    """Handle returned by `ctx.sandbox()`; use it with `async with`."""

    def __init__(
        self,
        ctx: SandboxHost,
        *,
        lifetime_s: float,
        backend: str | None,
        limits: Limits | None,
        env: dict[str, str],
        idle_timeout_s: float,
        volumes: list[str],
    ) -> None:
        self._ctx = ctx
        self._options = CreateOptions(
            backend=backend,
            limits=limits or Limits(),
            env=env,
            timeout_s=lifetime_s,
            idle_timeout_s=idle_timeout_s,
            volumes=volumes,
            run_id=ctx.run_id,
        )
        self.id: str | None = None

    @property
    def _manager(self) -> SandboxManager:
        manager: SandboxManager = self._ctx.sandboxes
        return manager

    async def __aenter__(self) -> RunSandbox:
        async def create() -> JsonObject:
            info = await self._manager.create(self._ctx.tenant_id, self._options)
            return {"id": info.id}

        self.id = str((await self._ctx.effect("sandbox create", create))["id"])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.delete()

    def _sandbox_id(self) -> str:
        if self.id is None:
            raise RuntimeError("use the sandbox inside `async with ctx.sandbox() as sb:`")
        return self.id

    async def exec(
        self,
        command: str | list[str] | None = None,
        *,
        code: str | None = None,
        language: str = "python",
        stdin: bytes = b"",
        env: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> SandboxResult:
        """Run a command or a piece of code; one journaled step."""
        sandbox_id = self._sandbox_id()
        argv = argv_for(command, code, language)
        timeout = timeout_s or self._options.limits.exec_timeout_s
        request = ExecRequest(argv, env or {}, "/work", stdin, timeout)

        async def run() -> JsonObject:
            completed = await self._manager.run(self._ctx.tenant_id, sandbox_id, request)
            return dataclasses.asdict(SandboxResult.from_completed(completed))

        data = await self._ctx.effect("sandbox exec", run)
        return SandboxResult(**data)

    async def write_file(self, path: str, data: bytes | str) -> None:
        sandbox_id = self._sandbox_id()
        raw = data.encode() if isinstance(data, str) else data

        async def write() -> JsonObject:
            await self._manager.write_file(self._ctx.tenant_id, sandbox_id, path, raw)
            return {"bytes": len(raw)}

        await self._ctx.effect("sandbox write_file", write)

    async def read_file(self, path: str) -> bytes:
        sandbox_id = self._sandbox_id()

        async def read() -> JsonObject:
            data = await self._manager.read_file(self._ctx.tenant_id, sandbox_id, path)
            return {"base64": base64.b64encode(data).decode()}

        result: dict[str, Any] = await self._ctx.effect("sandbox read_file", read)
        return base64.b64decode(result["base64"])

    async def delete(self) -> None:
        if self.id is None:
            return
        sandbox_id, self.id = self.id, None

        async def delete() -> JsonObject:
            info = await self._manager.describe(self._ctx.tenant_id, sandbox_id)
            if info.state not in ("deleted", "failed"):
                await self._manager.delete(self._ctx.tenant_id, sandbox_id)
            return {"deleted": sandbox_id}

        await self._ctx.effect("sandbox delete", delete)
