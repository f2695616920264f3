"""A bounded warm pool of launched bwrap sandboxes, so a create skips launch (~200–350 ms here).

Each pooled sandbox is complete and private before anyone asks for it: its own id, host uid,
cgroups, namespaces and work dir. A create that fits the pool's launch profile takes one and
gets its limits applied at hand-out; a background task refills one sandbox at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from steward.sandbox.bwrap import BwrapInstance
from steward.sandbox.types import Limits, SandboxSpec

log = logging.getLogger("steward.sandbox")
RETRY_AFTER_FAILURE_S = 5.0


@dataclass
class Pooled:
    spec: SandboxSpec  # the launch spec: default limits, no volumes
    instance: BwrapInstance


def fits(pool_limits: Limits, limits: Limits, volumes: list[str]) -> bool:
    """Whether a pooled sandbox can become one with `limits` and `volumes`.

    `/tmp` is sized and the open-files rlimit is set when bwrap starts, and volumes are mounted
    then: those must match the pool's launch profile. The rest is applied at hand-out.
    """
    fixed = (pool_limits.tmp_mib, pool_limits.open_files)
    return not volumes and (limits.tmp_mib, limits.open_files) == fixed


class WarmPool:
    """Up to `size` launched sandboxes; `size` 0 disables the pool.

    Filling starts with the first sandbox a process creates (or `start`), so processes that
    never use sandboxes launch none.
    """

    def __init__(
        self,
        size: int,
        launch: Callable[[], Awaitable[Pooled]],
        discard: Callable[[Pooled], Awaitable[None]],
        limits: Limits | None = None,
    ) -> None:
        if size < 0:
            raise ValueError("the sandbox pool size must be 0 or more")
        self.size = size
        self.limits = limits or Limits()
        self._launch = launch
        self._discard = discard
        self._ready: list[Pooled] = []
        self._wanted = asyncio.Event()
        self._changed = asyncio.Condition()
        self._filler: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.size > 0 and self._filler is None:
            self._filler = asyncio.create_task(self._fill())
            self._wanted.set()

    def take(self, limits: Limits, volumes: list[str]) -> Pooled | None:
        """A ready sandbox for this profile, or None (then the caller launches one itself)."""
        if not self._ready or not fits(self.limits, limits, volumes):
            return None
        pooled = self._ready.pop(0)
        self._wanted.set()
        return pooled

    def __len__(self) -> int:
        return len(self._ready)

    def uids(self) -> set[int]:
        return {pooled.spec.host_uid for pooled in self._ready}

    def ids(self) -> list[str]:
        return [pooled.spec.id for pooled in self._ready]

    async def wait_full(self, timeout_s: float = 60.0) -> None:
        """Start filling if needed, then wait until every slot holds a ready sandbox."""
        self.start()
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(self._ready) >= self.size)

    async def _fill(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while len(self._ready) < self.size:
                try:
                    pooled = await self._launch()
                except Exception:
                    log.exception("could not launch a sandbox for the warm pool; retrying")
                    await asyncio.sleep(RETRY_AFTER_FAILURE_S)
                    continue
                self._ready.append(pooled)
                async with self._changed:
                    self._changed.notify_all()

    async def close(self) -> None:
        """Stop refilling and destroy every pooled sandbox (a launch in flight is undone too)."""
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
            self._filler = None
        ready, self._ready = self._ready, []
        for pooled in ready:
            try:
                await self._discard(pooled)
            except Exception:
                log.exception("could not destroy pooled sandbox %s", pooled.spec.id)
