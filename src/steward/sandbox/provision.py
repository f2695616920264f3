"""Getting a started sandbox for a create: a backend chosen, then a warm-pool hand-out or a cold
launch, with its record inserted and its state dir claimed before anything else is made."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import uuid

from steward.errors import SandboxBackendRefused, SandboxUnavailable, UserError
from steward.sandbox.bwrap import BwrapBackend, BwrapInstance
from steward.sandbox.gvisor import GVisorBackend
from steward.sandbox.options import BASE_ENV, CreateOptions
from steward.sandbox.pool import Pooled, WarmPool
from steward.sandbox.process import ProcessBackend
from steward.sandbox.records import UID_BASE, UID_SPAN, SandboxInfo, SandboxRecords
from steward.sandbox.state_dirs import StateDirs, remove_tree
from steward.sandbox.types import Instance, SandboxBackend, SandboxSpec

log = logging.getLogger("steward.sandbox")
PREFERENCE = ("bwrap", "gvisor", "process")


@dataclasses.dataclass(frozen=True)
class Started:
    info: SandboxInfo
    spec: SandboxSpec
    backend: SandboxBackend
    instance: Instance


class Provisioner:
    def __init__(
        self,
        records: SandboxRecords,
        dirs: StateDirs,
        *,
        default_backend: str | None,
        allow_unisolated: bool,
        pool_size: int,
    ) -> None:
        self.records = records
        self.dirs = dirs
        self.backends: dict[str, SandboxBackend] = {
            "bwrap": BwrapBackend(),
            "gvisor": GVisorBackend(),
            "process": ProcessBackend(enabled=allow_unisolated),
        }
        self.default_backend = default_backend
        self.pool = WarmPool(pool_size, self._launch_pooled, self._discard_pooled)
        self._pool_possible = False

    def enable_pool(self) -> None:
        self._pool_possible = self.backends["bwrap"].unavailable_reason() is None

    def pick_backend(self, name: str | None) -> SandboxBackend:
        if name is not None:  # the caller's choice: it may choose another
            return self._available(name, SandboxBackendRefused)
        if self.default_backend is not None:  # the operator's choice
            return self._available(self.default_backend, SandboxUnavailable)
        reasons = []
        for candidate in PREFERENCE:
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

    async def start(self, tenant_id: str, options: CreateOptions) -> Started:
        backend = self.pick_backend(options.backend)
        options.check_volumes()
        if backend.name == "bwrap" and self._pool_possible:
            self.pool.start()  # the first create warms the pool for the next ones
            pooled = self.pool.take(options.limits, options.volumes)
            if pooled is not None:
                started = await self._hand_out(tenant_id, pooled, options)
                if started is not None:
                    return started
        return await self._launch_cold(tenant_id, backend, options)

    async def _launch_cold(
        self, tenant_id: str, backend: SandboxBackend, options: CreateOptions
    ) -> Started:
        sandbox_id = "sbx_" + uuid.uuid4().hex[:20]
        volumes = self.dirs.home / "volumes" / tenant_id
        host_uid, info = await asyncio.to_thread(
            self.records.insert,
            sandbox_id=sandbox_id,
            tenant_id=tenant_id,
            backend=backend.name,
            options=options,
            owner=self.dirs.owner,
        )
        spec = SandboxSpec(
            id=sandbox_id,
            work_dir=self.dirs.path(backend, sandbox_id) / "work",
            limits=options.limits,
            env={**BASE_ENV, **options.env},
            volumes={name: volumes / name for name in options.volumes},
            host_uid=host_uid,
        )
        try:
            await asyncio.to_thread(self._prepare, backend, spec)
            instance = await backend.start(spec)
        except BaseException as exc:
            await asyncio.to_thread(
                self.records.set_state, sandbox_id, "failed", reason=f"start failed: {exc}"
            )
            await asyncio.to_thread(remove_tree, spec.work_dir.parent)
            raise
        return Started(info, spec, backend, instance)

    def _prepare(self, backend: SandboxBackend, spec: SandboxSpec) -> None:
        for host_dir in spec.volumes.values():
            host_dir.mkdir(parents=True, exist_ok=True)
        self.dirs.claim(backend, spec.id)

    # -- warm pool ------------------------------------------------------------------------------

    async def _launch_pooled(self) -> Pooled:
        """A complete bwrap sandbox with the pool's limits, its uid not held by any record."""
        backend = self.backends["bwrap"]
        sandbox_id = "sbx_" + uuid.uuid4().hex[:20]
        uid = await asyncio.to_thread(self._free_uid)
        spec = SandboxSpec(
            id=sandbox_id,
            work_dir=self.dirs.path(backend, sandbox_id) / "work",
            limits=self.pool.limits,
            env=dict(BASE_ENV),
            host_uid=uid,
        )
        try:
            await asyncio.to_thread(self.dirs.claim, backend, sandbox_id)
            instance = await backend.start(spec)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(remove_tree, spec.work_dir.parent))
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
            await asyncio.to_thread(remove_tree, pooled.spec.work_dir.parent)

    async def _hand_out(
        self, tenant_id: str, pooled: Pooled, options: CreateOptions
    ) -> Started | None:
        """Make a pooled sandbox the tenant's; None (and it is destroyed) if it cannot be."""
        spec = dataclasses.replace(
            pooled.spec, limits=options.limits, env={**BASE_ENV, **options.env}
        )
        try:
            pooled.instance.hand_over(spec)  # limits first: the record then describes the truth
            _, info = await asyncio.to_thread(
                self.records.insert,
                sandbox_id=spec.id,
                tenant_id=tenant_id,
                backend="bwrap",
                options=options,
                owner=self.dirs.owner,
                host_uid=spec.host_uid,
                state="running",  # already running: no second write to say so
            )
        except Exception as exc:  # e.g. its uid was taken meanwhile by another Steward process
            log.warning("pooled sandbox %s not handed out (%s); launching one", spec.id, exc)
            await self._discard_pooled(pooled)
            return None
        return Started(info, spec, self.backends["bwrap"], pooled.instance)
