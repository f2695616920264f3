"""Sandboxes for tenants: the one entry point routes, tools and runs use.

A thin layer over its parts: `provision` (backend, warm pool, cold launch), `held` (the
sandboxes this process holds, standby, ending), `watchdog` (lifetime, CPU budget, idle
standby), `state_dirs` (crash recovery) and `files` (host-side file access). Every database
and file-system call of the async methods runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from steward.errors import SandboxStateError
from steward.sandbox.files import FileEntry, list_files, read_file, write_file
from steward.sandbox.held import HeldSandboxes, LiveSandbox
from steward.sandbox.options import Completed, CreateOptions, argv_for
from steward.sandbox.pool import WarmPool
from steward.sandbox.provision import Provisioner
from steward.sandbox.records import SandboxInfo, SandboxRecords
from steward.sandbox.state_dirs import StateDirs
from steward.sandbox.transitions import TransitionWriter
from steward.sandbox.types import ExecEvent, ExecRequest, Output, SandboxBackend, StandbyMode
from steward.sandbox.watchdog import Watchdog
from steward.store.database import Database

if TYPE_CHECKING:
    from steward.observe.metrics import RuntimeMetrics

__all__ = ["Completed", "CreateOptions", "SandboxManager", "argv_for"]
MAX_FILE_BYTES = 8 * 1024 * 1024


class SandboxManager:
    def __init__(
        self,
        db: Database,
        home: Path,
        *,
        default_backend: str | None = None,
        allow_unisolated: bool = False,
        pool_size: int = 0,
    ) -> None:
        self.records = SandboxRecords(db)
        self.home = home.resolve()
        self._dirs = StateDirs(self.home, f"{socket.gethostname()}:{os.getpid()}")
        self._transitions = TransitionWriter(self.records)
        self._held = HeldSandboxes(self.records, self._transitions)
        self._watchdog = Watchdog(self._held)
        self._provisioner = Provisioner(
            self.records,
            self._dirs,
            default_backend=default_backend,
            allow_unisolated=allow_unisolated,
            pool_size=pool_size,
        )
        self.backends: dict[str, SandboxBackend] = self._provisioner.backends
        self.pool: WarmPool = self._provisioner.pool
        self.metrics: RuntimeMetrics | None = None  # set by the runtime that serves /metrics

    @property
    def _live(self) -> dict[str, LiveSandbox]:
        return self._held.live

    async def start(self) -> None:
        await asyncio.to_thread(self._dirs.reap_orphans, self.records)
        self._watchdog.start()
        self._transitions.start()
        self._provisioner.enable_pool()

    async def close(self) -> None:
        await self._watchdog.close()
        await self._transitions.close()
        await self.pool.close()
        await self._held.end_all("the server shut down")

    async def create(self, tenant_id: str, options: CreateOptions) -> SandboxInfo:
        started = await self._provisioner.start(tenant_id, options)
        return self._held.hold(
            started.info, started.spec, started.backend, started.instance, options
        )

    async def sandbox_for_run(self, tenant_id: str, run_id: str, options: CreateOptions) -> str:
        """The live sandbox of a run held here, created on first use (for `run_code`)."""
        async with self._held.run_lock(run_id):
            existing = self._held.of_run(tenant_id, run_id)
            return existing or (await self.create(tenant_id, options)).id

    async def describe(self, tenant_id: str, sandbox_id: str) -> SandboxInfo:
        """The tenant's sandbox with its live state; NotFound for another tenant's."""
        info = await asyncio.to_thread(self.records.get, tenant_id, sandbox_id)
        return self._held.current(info)

    async def describe_all(
        self, tenant_id: str, *, include_ended: bool = False
    ) -> list[SandboxInfo]:
        infos = await asyncio.to_thread(
            self.records.list_sandboxes, tenant_id, include_ended=include_ended
        )
        return [self._held.current(info) for info in infos]

    def get(self, tenant_id: str, sandbox_id: str) -> SandboxInfo:
        """`describe` for synchronous callers (it reads the database: not from async code)."""
        return self._held.current(self.records.get(tenant_id, sandbox_id))

    def list_sandboxes(self, tenant_id: str, *, include_ended: bool = False) -> list[SandboxInfo]:
        """`describe_all` for synchronous callers (not from async code)."""
        infos = self.records.list_sandboxes(tenant_id, include_ended=include_ended)
        return [self._held.current(info) for info in infos]

    async def exec(
        self, tenant_id: str, sandbox_id: str, request: ExecRequest
    ) -> AsyncIterator[ExecEvent]:
        """Run a command, resuming the sandbox first if it is in standby."""
        live = await self._held.held(tenant_id, sandbox_id)
        live.busy += 1
        started = time.perf_counter()
        try:
            await self._held.resume(sandbox_id, live)
            env = {**live.spec.env, **request.env}
            request = ExecRequest(request.argv, env, request.cwd, request.stdin, request.timeout_s)
            try:
                async for event in live.instance.exec(request):
                    yield event
            except SandboxStateError as exc:
                if self._held.live.get(sandbox_id) is live:
                    await self._held.end(sandbox_id, "failed", str(exc))
                raise
        finally:
            live.busy -= 1
            live.last_active = time.monotonic()
            if self.metrics is not None:
                self.metrics.sandbox_exec_ended(live.backend.name, started, sys.exc_info()[1])

    async def run(self, tenant_id: str, sandbox_id: str, request: ExecRequest) -> Completed:
        out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        async for event in self.exec(tenant_id, sandbox_id, request):
            if isinstance(event, Output):
                out[event.stream] += event.data
            else:
                return Completed(event, bytes(out["stdout"]), bytes(out["stderr"]))
        raise SandboxStateError("the exec ended without a result")

    async def standby(self, tenant_id: str, sandbox_id: str, mode: StandbyMode | None) -> None:
        live = await self._held.held(tenant_id, sandbox_id)
        async with live.lock:
            await self._held.standby(sandbox_id, live, mode)

    async def resume(self, tenant_id: str, sandbox_id: str) -> None:
        await self._held.resume(sandbox_id, await self._held.held(tenant_id, sandbox_id))

    async def delete(self, tenant_id: str, sandbox_id: str) -> None:
        await self._held.delete(tenant_id, sandbox_id)

    # -- files (host side, confined to the work directory) -------------------------------------

    async def read_file(self, tenant_id: str, sandbox_id: str, path: str) -> bytes:
        live = await self._held.held(tenant_id, sandbox_id)
        return await asyncio.to_thread(
            read_file, live.spec.work_dir, path, max_bytes=MAX_FILE_BYTES
        )

    async def write_file(self, tenant_id: str, sandbox_id: str, path: str, data: bytes) -> None:
        live = await self._held.held(tenant_id, sandbox_id)
        owner = _file_owner(live)
        await asyncio.to_thread(write_file, live.spec.work_dir, path, data, owner=owner)
        live.last_active = time.monotonic()

    async def list_files(self, tenant_id: str, sandbox_id: str, path: str) -> list[FileEntry]:
        live = await self._held.held(tenant_id, sandbox_id)
        return await asyncio.to_thread(list_files, live.spec.work_dir, path)


def _file_owner(live: LiveSandbox) -> int | None:
    if live.backend.name == "bwrap":
        return live.spec.host_uid
    if live.backend.name == "gvisor":
        return 65534
    return None
