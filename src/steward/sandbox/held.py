"""The sandboxes this Steward process holds: lookup by tenant, standby and resume, and ending.

An end (delete, lifetime, CPU budget, failure, shutdown) is registered before its first await,
so a second end or a delete arriving meanwhile waits for it instead of finding the sandbox
neither held nor ended ("held by another Steward process").
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field

from steward.errors import NotFound, SandboxStateError
from steward.sandbox.options import CreateOptions
from steward.sandbox.records import LIVE, SandboxInfo, SandboxRecords
from steward.sandbox.state_dirs import remove_tree
from steward.sandbox.transitions import TransitionWriter
from steward.sandbox.types import Instance, SandboxBackend, SandboxSpec, StandbyMode

ENDED = ("deleted", "failed")


@dataclass
class LiveSandbox:
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


@dataclass
class _Ending:
    tenant_id: str
    done: asyncio.Event = field(default_factory=asyncio.Event)


class HeldSandboxes:
    def __init__(self, records: SandboxRecords, transitions: TransitionWriter) -> None:
        self.records = records
        self.transitions = transitions
        self.live: dict[str, LiveSandbox] = {}
        self._ending: dict[str, _Ending] = {}
        self._run_locks: dict[str, asyncio.Lock] = {}

    def hold(
        self,
        info: SandboxInfo,
        spec: SandboxSpec,
        backend: SandboxBackend,
        instance: Instance,
        options: CreateOptions,
    ) -> SandboxInfo:
        """Hold a started sandbox; its record says "running" now or after a queued write."""
        deadline = time.monotonic() + options.timeout_s if options.timeout_s else None
        tenant_id, idle_s = info.tenant_id, options.idle_timeout_s
        self.live[spec.id] = LiveSandbox(
            spec, backend, instance, tenant_id, idle_s, deadline, options.run_id
        )
        if info.state != "running":
            self.transitions.record(spec.id, "running")
        return self.current(info)

    def run_lock(self, run_id: str) -> asyncio.Lock:
        """Serialises a run's first-use creates (`sandbox_for_run`); dropped when it ends."""
        return self._run_locks.setdefault(run_id, asyncio.Lock())

    def of_run(self, tenant_id: str, run_id: str) -> str | None:
        for sandbox_id, live in self.live.items():
            if live.tenant_id == tenant_id and live.run_id == run_id:
                return sandbox_id
        return None

    async def held(self, tenant_id: str, sandbox_id: str) -> LiveSandbox:
        """The tenant's live sandbox; NotFound for another tenant's; why not, if not held here."""
        live = self.live.get(sandbox_id)
        if live is not None:
            if live.tenant_id != tenant_id:
                raise NotFound("sandbox", sandbox_id)
            return live  # the hot path reads no database
        ending = self._ending.get(sandbox_id)
        info = await asyncio.to_thread(self.records.get, tenant_id, sandbox_id)
        if ending is not None:
            raise SandboxStateError(f"sandbox {sandbox_id} is ending")
        if info.state in ENDED:
            reason = f": {info.reason}" if info.reason else ""
            raise SandboxStateError(f"sandbox {sandbox_id} is {info.state}{reason}")
        raise SandboxStateError(f"sandbox {sandbox_id} is held by another Steward process")

    def current(self, info: SandboxInfo) -> SandboxInfo:
        """The record, with the live state (its database write may still be queued)."""
        live = self.live.get(info.id)
        if live is None or info.state not in LIVE:
            return info
        state = "standby" if live.standby else "running"
        return dataclasses.replace(info, state=state, standby_mode=live.standby)

    async def delete(self, tenant_id: str, sandbox_id: str) -> None:
        """End the tenant's sandbox; an end already under way (the watchdog's) counts."""
        live, ending = self.live.get(sandbox_id), self._ending.get(sandbox_id)
        owner = live.tenant_id if live is not None else ending.tenant_id if ending else None
        if owner is not None:
            if owner != tenant_id:
                raise NotFound("sandbox", sandbox_id)
            await self.end(sandbox_id, "deleted", "deleted through the API")
            return
        # Neither held nor ending when we looked: any end of ours was recorded before, so
        # the record read now is final for this process.
        info = await asyncio.to_thread(self.records.get, tenant_id, sandbox_id)
        if info.state not in ENDED:
            raise SandboxStateError(f"sandbox {sandbox_id} is held by another Steward process")

    async def end(self, sandbox_id: str, state: str, reason: str) -> None:
        """Destroy a held sandbox and record its end once; concurrent ends wait for the first."""
        ending = self._ending.get(sandbox_id)
        if ending is not None:
            await ending.done.wait()
            return
        live = self.live.get(sandbox_id)
        if live is None:
            return  # not held here (or ended before): nothing of ours to undo or record
        ending = self._ending[sandbox_id] = _Ending(live.tenant_id)
        try:
            await self.transitions.flush()  # an earlier transition must not overwrite the end
            del self.live[sandbox_id]
            if live.run_id is not None:
                self._run_locks.pop(live.run_id, None)
            try:
                await live.instance.destroy()
            finally:
                await asyncio.to_thread(remove_tree, live.spec.work_dir.parent)
            await asyncio.to_thread(self.records.set_state, sandbox_id, state, reason=reason)
        finally:
            del self._ending[sandbox_id]
            ending.done.set()

    async def standby(self, sandbox_id: str, live: LiveSandbox, mode: StandbyMode | None) -> None:
        """Put a held sandbox to standby; the caller holds `live.lock`."""
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
        self.transitions.record(sandbox_id, "standby", standby_mode=mode)

    async def resume(self, sandbox_id: str, live: LiveSandbox) -> None:
        if live.standby is None:
            return
        async with live.lock:
            if not _in_standby(live):  # another task resumed it while we waited
                return
            await live.instance.resume()
            live.standby = None
            live.last_active = time.monotonic()
            self.transitions.record(sandbox_id, "running")

    async def end_all(self, reason: str) -> None:
        for sandbox_id in list(self.live):
            await self.end(sandbox_id, "deleted", reason)


def _in_standby(live: LiveSandbox) -> bool:
    """A function call, so type checkers do not narrow `standby` across the awaited lock."""
    return live.standby is not None
