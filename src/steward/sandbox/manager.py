"""Sandboxes for tenants: create, exec (resuming on demand), files, standby, delete, idle sweeps.

The manager owns the records, the per-sandbox work directories and volumes, and the watchdog
that puts idle sandboxes to standby and ends those past their lifetime or CPU budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steward.errors import (
    SandboxBackendRefused,
    SandboxStateError,
    SandboxUnavailable,
    UserError,
)
from steward.sandbox import cgroups
from steward.sandbox.bwrap import RUNTIME_ROOT, BwrapBackend, BwrapInstance, unmount
from steward.sandbox.files import FileEntry, list_files, read_file, write_file
from steward.sandbox.gvisor import GVisorBackend
from steward.sandbox.pool import Pooled, WarmPool
from steward.sandbox.process import ProcessBackend
from steward.sandbox.records import UID_BASE, UID_SPAN, SandboxInfo, SandboxRecords
from steward.sandbox.types import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    Instance,
    Limits,
    Output,
    SandboxBackend,
    SandboxSpec,
    StandbyMode,
)
from steward.store.database import Database

log = logging.getLogger("steward.sandbox")
VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/work", "LANG": "C.UTF-8"}
WATCH_INTERVAL_S = 0.25
OWNER_FILE = "owner.json"  # in each state dir: which Steward process made it (crash recovery)
MAX_FILE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class CreateOptions:
    backend: str | None = None  # None: the best one available here
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None  # lifetime; None = until deleted
    idle_timeout_s: float = 15.0
    volumes: list[str] = field(default_factory=list)
    run_id: str | None = None


@dataclass(frozen=True)
class Completed:
    """An exec collected whole (for JSON answers, tools and journaled steps)."""

    result: ExecResult
    stdout: bytes
    stderr: bytes


@dataclass
class _Live:
    spec: SandboxSpec
    backend: SandboxBackend
    instance: Instance
    tenant_id: str
    idle_timeout_s: float
    deadline: float | None  # monotonic end of life
    run_id: str | None = None
    last_active: float = field(default_factory=time.monotonic)
    busy: int = 0
    standby: StandbyMode | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.backends: dict[str, SandboxBackend] = {
            "bwrap": BwrapBackend(),
            "gvisor": GVisorBackend(),
            "process": ProcessBackend(enabled=allow_unisolated),
        }
        self.default_backend = default_backend
        self._live: dict[str, _Live] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._run_locks: dict[str, asyncio.Lock] = {}
        self._state_writes: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.pool = WarmPool(pool_size, self._launch_pooled, self._discard_pooled)
        self._pool_possible = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._reap_orphans)
        self._watchdog = asyncio.create_task(self._watch())
        self._writer = asyncio.create_task(self._write_states())
        self._pool_possible = self.backends["bwrap"].unavailable_reason() is None

    async def close(self) -> None:
        for task in (self._watchdog, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.pool.close()
        for sandbox_id in list(self._live):
            await self._end(sandbox_id, "deleted", "the server shut down")

    def _reap_orphans(self) -> None:
        """Fail the records of Steward processes on this host that died, and clean up after them."""
        host = socket.gethostname()
        for sandbox_id in self.records.live_of_owner_prefix(f"{host}:"):
            row = self.records.find(sandbox_id)
            if row is None or _alive(int(row.owner.rsplit(":", 1)[1])):
                continue
            log.warning("sandbox %s outlived its Steward process; cleaning up", sandbox_id)
            for state in (RUNTIME_ROOT / sandbox_id, self.home / "sandboxes" / sandbox_id):
                parents = (_read_owner(state) or {}).get("cgroup_parents")
                _clean_state_dir(state, sandbox_id, parents)
            self.records.set_state(sandbox_id, "failed", reason="its Steward process ended")
        # Then whatever a dead Steward process left under /run, recorded or not (pooled ones).
        for state in RUNTIME_ROOT.iterdir() if RUNTIME_ROOT.is_dir() else ():
            owner = _read_owner(state)
            if owner is None or not owner["owner"].startswith(f"{host}:"):
                continue
            if not _alive(int(owner["owner"].rsplit(":", 1)[1])):
                log.warning("cleaning up sandbox %s of a dead Steward process", state.name)
                _clean_state_dir(state, state.name, owner.get("cgroup_parents", {}))

    def _state_dir(self, backend: SandboxBackend, sandbox_id: str) -> Path:
        if backend.isolated:  # the isolating backends run as root and mount under /run
            return RUNTIME_ROOT / sandbox_id
        return self.home / "sandboxes" / sandbox_id

    def _claim_state_dir(self, backend: SandboxBackend, sandbox_id: str) -> Path:
        """Create the state dir with an owner file first: after a crash (even a SIGKILL while a
        sandbox is frozen) the next start finds and removes everything it leads to."""
        state = self._state_dir(backend, sandbox_id)
        state.mkdir(parents=True, mode=0o711, exist_ok=True)
        try:
            parents = {c: str(d) for c, d in cgroups.parent_dirs().items()}
        except SandboxUnavailable:
            parents = {}
        owner = {"owner": self.owner, "cgroup_parents": parents}
        (state / OWNER_FILE).write_text(json.dumps(owner))
        return state

    def pick_backend(self, name: str | None) -> SandboxBackend:
        if name is not None:  # the caller's choice: it may choose another
            return self._available(name, SandboxBackendRefused)
        if self.default_backend is not None:  # the operator's choice
            return self._available(self.default_backend, SandboxUnavailable)
        reasons = []
        for candidate in ("bwrap", "gvisor", "process"):
            reason = self.backends[candidate].unavailable_reason()
            if reason is None:
                return self.backends[candidate]
            reasons.append(f"{candidate}: {reason}")
        raise SandboxUnavailable("no sandbox backend can run here (" + "; ".join(reasons) + ")")

    def _available(self, name: str, unavailable: type[SandboxUnavailable]) -> SandboxBackend:
        backend = self.backends.get(name)
        if backend is None:
            raise UserError(f"unknown sandbox backend {name!r}; known: {sorted(self.backends)}")
        reason = backend.unavailable_reason()
        if reason:
            raise unavailable(f"sandbox backend {name!r} is unavailable: {reason}")
        return backend

    # -- API ----------------------------------------------------------------------------------

    async def create(self, tenant_id: str, options: CreateOptions) -> SandboxInfo:
        backend = self.pick_backend(options.backend)
        for name in options.volumes:
            if not VOLUME_NAME.match(name):
                raise UserError(f"volume name {name!r} must match {VOLUME_NAME.pattern}")
        if backend.name == "bwrap":
            if self._pool_possible:
                self.pool.start()  # the first create warms the pool for the next ones
            pooled = self.pool.take(options.limits, options.volumes)
            if pooled is not None:
                info = await self._hand_out(tenant_id, pooled, options)
                if info is not None:
                    return info
        sandbox_id = "sbx_" + uuid.uuid4().hex[:20]
        host_uid = await asyncio.to_thread(
            self.records.insert,
            sandbox_id=sandbox_id,
            tenant_id=tenant_id,
            backend=backend.name,
            limits=options.limits,
            env_keys=list(options.env),
            volumes=options.volumes,
            idle_timeout_s=options.idle_timeout_s,
            timeout_s=options.timeout_s,
            run_id=options.run_id,
            owner=self.owner,
        )
        volumes = {}
        for name in options.volumes:
            volumes[name] = self.home / "volumes" / tenant_id / name
            volumes[name].mkdir(parents=True, exist_ok=True)
        spec = SandboxSpec(
            id=sandbox_id,
            work_dir=self._state_dir(backend, sandbox_id) / "work",
            limits=options.limits,
            env={**BASE_ENV, **options.env},
            volumes=volumes,
            host_uid=host_uid,
        )
        try:
            self._claim_state_dir(backend, sandbox_id)
            instance = await backend.start(spec)
        except BaseException as exc:
            await asyncio.to_thread(
                self.records.set_state, sandbox_id, "failed", reason=f"start failed: {exc}"
            )
            shutil.rmtree(spec.work_dir.parent, ignore_errors=True)
            raise
        return self._hold(tenant_id, spec, backend, instance, options)

    def _hold(
        self,
        tenant_id: str,
        spec: SandboxSpec,
        backend: SandboxBackend,
        instance: Instance,
        options: CreateOptions,
    ) -> SandboxInfo:
        deadline = time.monotonic() + options.timeout_s if options.timeout_s else None
        self._live[spec.id] = _Live(
            spec, backend, instance, tenant_id, options.idle_timeout_s, deadline, options.run_id
        )
        self._record_state(spec.id, "running")
        return self.get(tenant_id, spec.id)

    # -- warm pool ------------------------------------------------------------------------------

    async def _launch_pooled(self) -> Pooled:
        """A complete bwrap sandbox with the pool's limits, its uid not held by any record."""
        backend = self.backends["bwrap"]
        sandbox_id = "sbx_" + uuid.uuid4().hex[:20]
        uid = await asyncio.to_thread(self._free_uid)
        spec = SandboxSpec(
            id=sandbox_id,
            work_dir=self._state_dir(backend, sandbox_id) / "work",
            limits=self.pool.limits,
            env=dict(BASE_ENV),
            host_uid=uid,
        )
        try:
            self._claim_state_dir(backend, sandbox_id)
            instance = await backend.start(spec)
        except BaseException:
            shutil.rmtree(spec.work_dir.parent, ignore_errors=True)
            raise
        assert isinstance(instance, BwrapInstance)
        return Pooled(spec, instance)

    def _free_uid(self) -> int:
        pooled = self.pool.uids()
        for _ in range(20):
            uid = UID_BASE + secrets.randbelow(UID_SPAN)
            if uid not in pooled and not self.records.uid_in_use(uid):
                return uid
        raise RuntimeError("could not find a free host uid for a pooled sandbox")

    async def _discard_pooled(self, pooled: Pooled) -> None:
        try:
            await pooled.instance.destroy()
        finally:
            shutil.rmtree(pooled.spec.work_dir.parent, ignore_errors=True)

    async def _hand_out(
        self, tenant_id: str, pooled: Pooled, options: CreateOptions
    ) -> SandboxInfo | None:
        """Make a pooled sandbox the tenant's; None (and it is destroyed) if it cannot be."""
        spec = dataclasses.replace(
            pooled.spec, limits=options.limits, env={**BASE_ENV, **options.env}
        )
        try:
            pooled.instance.hand_over(spec)  # limits first: the record then describes the truth
            await asyncio.to_thread(
                self.records.insert,
                sandbox_id=spec.id,
                tenant_id=tenant_id,
                backend="bwrap",
                limits=options.limits,
                env_keys=list(options.env),
                volumes=[],
                idle_timeout_s=options.idle_timeout_s,
                timeout_s=options.timeout_s,
                run_id=options.run_id,
                owner=self.owner,
                host_uid=spec.host_uid,
            )
        except Exception as exc:  # e.g. its uid was taken meanwhile by another Steward process
            log.warning("pooled sandbox %s not handed out (%s); launching one", spec.id, exc)
            await self._discard_pooled(pooled)
            return None
        return self._hold(tenant_id, spec, self.backends["bwrap"], pooled.instance, options)

    async def sandbox_for_run(self, tenant_id: str, run_id: str, options: CreateOptions) -> str:
        """The live sandbox of a run held here, created on first use (for `run_code`)."""
        lock = self._run_locks.setdefault(run_id, asyncio.Lock())
        async with lock:
            for sandbox_id, live in self._live.items():
                if live.tenant_id == tenant_id and live.run_id == run_id:
                    return sandbox_id
            return (await self.create(tenant_id, options)).id

    def get(self, tenant_id: str, sandbox_id: str) -> SandboxInfo:
        return self._current(self.records.get(tenant_id, sandbox_id))

    def _current(self, info: SandboxInfo) -> SandboxInfo:
        """The record, with the live state (its database write may still be queued)."""
        live = self._live.get(info.id)
        if live is None or info.state not in ("starting", "running", "standby"):
            return info
        state = "standby" if live.standby else "running"
        return dataclasses.replace(info, state=state, standby_mode=live.standby)

    def list_sandboxes(self, tenant_id: str, *, include_ended: bool = False) -> list[SandboxInfo]:
        infos = self.records.list_sandboxes(tenant_id, include_ended=include_ended)
        return [self._current(info) for info in infos]

    def _held(self, tenant_id: str, sandbox_id: str) -> _Live:
        live = self._live.get(sandbox_id)
        if live is not None and live.tenant_id == tenant_id:
            return live  # the hot path reads no database
        info = self.records.get(tenant_id, sandbox_id)  # NotFound for other tenants
        if live is None:
            if info.state in ("deleted", "failed"):
                reason = f": {info.reason}" if info.reason else ""
                raise SandboxStateError(f"sandbox {sandbox_id} is {info.state}{reason}")
            raise SandboxStateError(f"sandbox {sandbox_id} is held by another Steward process")
        return live

    async def exec(
        self, tenant_id: str, sandbox_id: str, request: ExecRequest
    ) -> AsyncIterator[ExecEvent]:
        """Run a command, resuming the sandbox first if it is in standby."""
        live = self._held(tenant_id, sandbox_id)
        live.busy += 1
        try:
            await self._resume(sandbox_id, live)
            env = {**live.spec.env, **request.env}
            request = ExecRequest(request.argv, env, request.cwd, request.stdin, request.timeout_s)
            try:
                async for event in live.instance.exec(request):
                    yield event
            except SandboxStateError as exc:
                if self._live.get(sandbox_id) is live:
                    await self._end(sandbox_id, "failed", str(exc))
                raise
        finally:
            live.busy -= 1
            live.last_active = time.monotonic()

    async def run(self, tenant_id: str, sandbox_id: str, request: ExecRequest) -> Completed:
        out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        async for event in self.exec(tenant_id, sandbox_id, request):
            if isinstance(event, Output):
                out[event.stream] += event.data
            else:
                return Completed(event, bytes(out["stdout"]), bytes(out["stderr"]))
        raise SandboxStateError("the exec ended without a result")

    async def standby(self, tenant_id: str, sandbox_id: str, mode: StandbyMode | None) -> None:
        live = self._held(tenant_id, sandbox_id)
        async with live.lock:
            await self._standby(sandbox_id, live, mode)

    async def _standby(self, sandbox_id: str, live: _Live, mode: StandbyMode | None) -> None:
        modes = live.backend.standby_modes
        if not modes:
            raise SandboxStateError(f"backend {live.backend.name!r} has no standby")
        mode = mode or modes[0]
        if mode not in modes:
            raise SandboxStateError(f"backend {live.backend.name!r} offers standby {modes}")
        if live.standby == mode:
            return
        if live.standby is not None:
            await live.instance.resume()
        await live.instance.standby(mode)
        live.standby = mode
        self._record_state(sandbox_id, "standby", standby_mode=mode)

    async def resume(self, tenant_id: str, sandbox_id: str) -> None:
        await self._resume(sandbox_id, self._held(tenant_id, sandbox_id))

    async def _resume(self, sandbox_id: str, live: _Live) -> None:
        if live.standby is None:
            return
        async with live.lock:
            if not self._in_standby(live):  # another task resumed it while we waited
                return
            await live.instance.resume()
            live.standby = None
            live.last_active = time.monotonic()
            self._record_state(sandbox_id, "running")

    def _record_state(self, sandbox_id: str, state: str, standby_mode: str | None = None) -> None:
        """Persist a standby/resume transition after answering: one writer keeps them in order."""
        self._state_writes.put_nowait((sandbox_id, state, standby_mode))

    async def _write_states(self) -> None:
        while True:
            sandbox_id, state, mode = await self._state_writes.get()
            try:
                await asyncio.to_thread(
                    self.records.set_state, sandbox_id, state, standby_mode=mode
                )
            except Exception:
                log.exception("could not record sandbox %s as %s", sandbox_id, state)
            finally:
                self._state_writes.task_done()

    @staticmethod
    def _in_standby(live: _Live) -> bool:
        return live.standby is not None

    async def delete(self, tenant_id: str, sandbox_id: str) -> None:
        info = self.records.get(tenant_id, sandbox_id)
        if sandbox_id in self._live:
            await self._end(sandbox_id, "deleted", "deleted through the API")
        elif info.state not in ("deleted", "failed"):
            raise SandboxStateError(f"sandbox {sandbox_id} is held by another Steward process")

    async def _end(self, sandbox_id: str, state: str, reason: str) -> None:
        if self._writer is not None and not self._writer.done():
            await self._state_writes.join()  # an earlier transition must not overwrite the end
        live = self._live.pop(sandbox_id, None)
        if live is not None:
            if live.run_id is not None:
                self._run_locks.pop(live.run_id, None)
            try:
                await live.instance.destroy()
            finally:
                shutil.rmtree(live.spec.work_dir.parent, ignore_errors=True)
        await asyncio.to_thread(self.records.set_state, sandbox_id, state, reason=reason)

    # -- files (host side, confined to the work directory) -------------------------------------

    async def read_file(self, tenant_id: str, sandbox_id: str, path: str) -> bytes:
        live = self._held(tenant_id, sandbox_id)
        return await asyncio.to_thread(
            read_file, live.spec.work_dir, path, max_bytes=MAX_FILE_BYTES
        )

    async def write_file(self, tenant_id: str, sandbox_id: str, path: str, data: bytes) -> None:
        live = self._held(tenant_id, sandbox_id)
        owner = _file_owner(live)
        await asyncio.to_thread(write_file, live.spec.work_dir, path, data, owner=owner)
        live.last_active = time.monotonic()

    async def list_files(self, tenant_id: str, sandbox_id: str, path: str) -> list[FileEntry]:
        live = self._held(tenant_id, sandbox_id)
        return await asyncio.to_thread(list_files, live.spec.work_dir, path)

    # -- watchdog -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            for sandbox_id, live in list(self._live.items()):
                try:
                    await self._check(sandbox_id, live)
                except Exception:  # one broken sandbox must not stop the watchdog
                    log.exception("sandbox watchdog failed on %s", sandbox_id)

    async def _check(self, sandbox_id: str, live: _Live) -> None:
        now = time.monotonic()
        if live.deadline is not None and now >= live.deadline:
            await self._end(sandbox_id, "deleted", "its lifetime (timeout_s) ended")
            return
        budget = live.spec.limits.cpu_seconds
        if budget is not None and live.instance.cpu_seconds() > budget:
            await self._end(sandbox_id, "failed", f"it used its CPU budget of {budget}s")
            return
        idle = now - live.last_active >= live.idle_timeout_s
        if idle and live.busy == 0 and live.standby is None and live.backend.standby_modes:
            async with live.lock:
                if live.busy == 0 and live.standby is None:
                    await self._standby(sandbox_id, live, None)


def argv_for(
    command: str | list[str] | None, code: str | None, language: str = "python"
) -> list[str]:
    """The argv for a shell command line, an argv list, or a piece of code in `language`."""
    if (command is None) == (code is None):
        raise UserError("give exactly one of `command` or `code`")
    if code is not None:
        interpreter = {"python": ["python3", "-c"], "sh": ["sh", "-c"], "bash": ["bash", "-c"]}
        if language not in interpreter:
            raise UserError(f"language must be one of {sorted(interpreter)}")
        argv = [*interpreter[language], code]
    elif isinstance(command, str):
        argv = ["sh", "-c", command]
    else:
        argv = list(command or [])
    if not argv or not argv[0] or any("\0" in part for part in argv):
        raise UserError("the command is empty or contains a NUL byte")
    return argv


def _file_owner(live: _Live) -> int | None:
    if live.backend.name == "bwrap":
        return live.spec.host_uid
    if live.backend.name == "gvisor":
        return 65534
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(state: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads((state / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("owner"), str) else None


def _clean_state_dir(
    state: Path, sandbox_id: str, cgroup_parents: dict[str, str] | None = None
) -> None:
    """Undo what a dead process's backend left: containers, cgroups, mounts, files.

    Frozen (standby) processes ignore SIGKILL until thawed, so cgroups are frozen, killed and
    thawed (`CgroupSet.remove`), in the hierarchy places the dead process recorded and ours."""
    runsc_root = state / "runsc"
    if runsc_root.exists():
        import subprocess

        subprocess.run(
            ["/usr/bin/runsc", f"--root={runsc_root}", "delete", "-force", f"steward-{sandbox_id}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    if cgroup_parents:
        recorded = {c: Path(parent) / f"sbx-{sandbox_id}" for c, parent in cgroup_parents.items()}
        if set(recorded) == set(cgroups.CONTROLLERS):
            try:
                cgroups.CgroupSet(recorded).remove()
            except Exception:
                log.exception("could not remove the cgroups of sandbox %s", sandbox_id)
    with contextlib.suppress(Exception):
        cgroups.sweep(f"sbx-{sandbox_id}")
        cgroups.remove_everywhere(f"{cgroups.GROUP_PARENT}/gv-{sandbox_id}")
    volumes = state / "volumes"
    for volume in volumes.iterdir() if volumes.is_dir() else ():
        unmount(volume)
    unmount(state / "work")
    shutil.rmtree(state, ignore_errors=True)
