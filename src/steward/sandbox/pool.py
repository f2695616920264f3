"""A warm pool of launched bwrap sandboxes, sized from recent demand, so a create skips launch.

Each pooled sandbox is complete and private before anyone asks for it: its own id, host uid,
cgroups, namespaces and work dir. Every create without volumes takes one if one is ready and
gets its own limits and environment at hand-out (`BwrapInstance.hand_over`); a background task
refills one sandbox at a time, and trims the pool when demand falls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from steward.sandbox.bwrap import BwrapInstance
from steward.sandbox.types import Limits, SandboxSpec

log = logging.getLogger("steward.sandbox")
RETRY_AFTER_FAILURE_S = 5.0
CLOSE_TIMEOUT_S = 15.0
DEMAND_WINDOW_S = 60.0  # creates older than this no longer size the pool
BURST_S = 10.0  # the pool holds as many sandboxes as were asked for in the busiest BURST_S
RECHECK_S = 15.0  # how often an idle pool looks whether demand fell (and trims)
# A refill launch costs ~100 ms of CPU: started at once it would compete with the first exec of
# the sandbox just handed out (2 cores here); a short pause lets that exec run first.
REFILL_DELAY_S = 0.05
# Pooled sandboxes launch with this open-files ceiling (or this process's own hard limit, if
# lower: raising it needs CAP_SYS_RESOURCE); the resident lowers it to each sandbox's own limit
# for every command it runs (an unprivileged process can only lower it).
OPEN_FILES_CEILING = 65536


@dataclass
class Pooled:
    spec: SandboxSpec  # the launch spec: the pool's limits, no volumes
    instance: BwrapInstance


def launch_limits() -> Limits:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ceiling = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    return Limits(open_files=min(OPEN_FILES_CEILING, ceiling))


def fits(pool_limits: Limits, limits: Limits, volumes: list[str]) -> bool:
    """Whether a pooled sandbox can become one with `limits` and `volumes`.

    Memory, pids, CPU rate and budget, disk and `/tmp` size are set at hand-out and open files
    per command (at most the launch ceiling); volumes are mounted at launch only.
    """
    return not volumes and limits.open_files <= pool_limits.open_files


class Demand:
    """Recent create requests, for sizing the pool."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._times: deque[float] = deque(maxlen=4096)

    def note(self) -> None:
        self._times.append(self._clock())

    def peak(self) -> int:
        """The most creates asked for within any BURST_S in the last DEMAND_WINDOW_S."""
        now = self._clock()
        while self._times and self._times[0] < now - DEMAND_WINDOW_S:
            self._times.popleft()
        best, first = 0, 0
        times = list(self._times)
        for last, moment in enumerate(times):
            while times[first] < moment - BURST_S:
                first += 1
            best = max(best, last - first + 1)
        return best


class WarmPool:
    """Up to `max_size` launched sandboxes, as many as recent demand asks for (at least one
    once started); `max_size` 0 disables the pool.

    Filling starts with the first sandbox a process creates (or `start`), so processes that
    never use sandboxes launch none.
    """

    def __init__(
        self,
        max_size: int,
        launch: Callable[[], Awaitable[Pooled]],
        discard: Callable[[Pooled], Awaitable[None]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 0:
            raise ValueError("the sandbox pool size must be 0 or more")
        self.max_size = max_size
        self.limits = launch_limits()
        self.demand = Demand(clock)
        self._launch = launch
        self._discard = discard
        self._ready: list[Pooled] = []
        self._wanted = asyncio.Event()
        self._changed = asyncio.Condition()
        self._filler: asyncio.Task[None] | None = None
        self._discarding: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        """The most sandboxes the pool may hold (demand decides how many it does)."""
        return self.max_size

    def start(self) -> None:
        if self.max_size > 0 and self._filler is None:
            self._filler = asyncio.create_task(self._fill())
            self._wanted.set()

    def target(self) -> int:
        """How many ready sandboxes the pool aims for now."""
        return min(self.max_size, max(1, self.demand.peak())) if self.max_size else 0

    def take(self, limits: Limits, volumes: list[str]) -> Pooled | None:
        """A ready sandbox for these limits, or None (then the caller launches one itself).

        Every call counts as demand, served or not."""
        self.demand.note()
        self._wanted.set()
        if not self._ready or not fits(self.limits, limits, volumes):
            return None
        return self._ready.pop(0)

    def __len__(self) -> int:
        return len(self._ready)

    def uids(self) -> set[int]:
        return {pooled.spec.host_uid for pooled in self._ready}

    def ids(self) -> list[str]:
        return [pooled.spec.id for pooled in self._ready]

    async def wait_full(self, timeout_s: float = 60.0) -> None:
        """Start filling if needed, then wait until the pool holds its target (no more)."""
        self.start()
        self._wanted.set()
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(self._ready) == self.target())

    async def _fill(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), RECHECK_S)
            self._wanted.clear()
            await asyncio.sleep(REFILL_DELAY_S)
            while len(self._ready) > self.target():
                await self._discard_quietly(self._ready.pop())
                await self._notify()
            while len(self._ready) < self.target():
                try:
                    pooled = await self._launch()
                except Exception:
                    log.exception("could not launch a sandbox for the warm pool; retrying")
                    await asyncio.sleep(RETRY_AFTER_FAILURE_S)
                    continue
                self._ready.append(pooled)
                await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _discard_quietly(self, pooled: Pooled) -> None:
        # A task of its own, shielded and awaited by `close`: a pool closing meanwhile must
        # neither leave a half-destroyed sandbox nor return before it is gone.
        task = asyncio.create_task(self._discard_logged(pooled))
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)
        await asyncio.shield(task)

    async def _discard_logged(self, pooled: Pooled) -> None:
        try:
            await self._discard(pooled)
        except Exception:
            log.exception("could not destroy pooled sandbox %s", pooled.spec.id)

    async def close(self) -> None:
        """Stop refilling and destroy every pooled sandbox (a launch in flight is undone too)."""
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                # A launch being undone gets a bounded time; shutdown must not hang on it.
                await asyncio.wait_for(self._filler, CLOSE_TIMEOUT_S)
            self._filler = None
        await asyncio.gather(*self._discarding)
        ready, self._ready = self._ready, []
        for pooled in ready:
            await self._discard_quietly(pooled)
