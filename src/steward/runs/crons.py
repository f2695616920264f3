"""The cron scheduler: fires each due tick of every cron exactly once across all processes.

Every process that executes runs (`steward dev`, each `steward worker`) sleeps until the
earliest tick (or a change to a cron it made), looking at least every `cron_poll_interval_s` for
crons other processes made; the row claim in `steward.store.crons` lets one of them win each
tick, which then starts a normal run through `steward.runs.launch.start_run`. Schedules live in
the database, so they survive restarts; a tick that came while every process was down fires
once at the next start (missed ticks are not replayed one by one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from steward.errors import StewardError
from steward.store.crons import Cron, CronStore, tick_label
from steward.store.items import ItemStore
from steward.store.schema import utcnow

log = logging.getLogger("steward.crons")

# (cron, tick) -> the id of the run started for the tick.
Fire = Callable[[Cron, datetime], Awaitable[str]]
# A claim outlives the few database round trips that start a run many times over.
LEASE_S = 60.0
PURGE_EVERY_S = 60.0
MIN_WAIT_S = 0.05


class CronScheduler:
    def __init__(
        self,
        crons: CronStore,
        fire: Fire,
        *,
        interval_s: float,
        items: ItemStore | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self._crons = crons
        self._fire = fire
        self._items = items
        self._interval_s = interval_s
        self._lease_s = lease_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._purged_at = float("-inf")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """A cron of this process was created or changed: look again now."""
        self._wake.set()

    async def _run_forever(self) -> None:
        while True:
            self._wake.clear()  # before the look: a wake during it is not lost
            wait = self._interval_s
            try:
                await self.tick()
                await self._purge()
                wait = await self._until_next()
            except Exception:  # the database is away: try again next turn
                log.exception("cron scheduling failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _until_next(self) -> float:
        """Seconds to the earliest known tick, at most the interval (crons another process
        creates are seen within it)."""
        earliest = await asyncio.to_thread(self._crons.earliest)
        if earliest is None:
            return self._interval_s
        # More than one batch of due crons, or a tick still in someone's hands: look again
        # soon, but never in a tight loop.
        return min(max((earliest - utcnow()).total_seconds(), MIN_WAIT_S), self._interval_s)

    async def _purge(self) -> None:
        if self._items is None or time.monotonic() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = time.monotonic()
        await asyncio.to_thread(self._items.purge_expired)

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Fire every due tick this process wins; the ids of the runs it started."""
        now = now or utcnow()
        started: list[str] = []
        for cron in await asyncio.to_thread(self._crons.due, now):
            run_id = await self._fire_once(cron, now)
            if run_id is not None:
                started.append(run_id)
        return started

    async def _fire_once(self, cron: Cron, now: datetime) -> str | None:
        if cron.claimed_tick is None:
            if not await asyncio.to_thread(self._crons.claim, cron, now, self._lease_s):
                return None  # another process has this tick
            assert cron.next_run_at is not None
            tick = cron.next_run_at
        else:  # its claimer went quiet before recording the run: finish its work
            if not await asyncio.to_thread(self._crons.take_over, cron, now, self._lease_s):
                return None
            tick = cron.claimed_tick
            existing = await asyncio.to_thread(self._crons.run_of_tick, cron, tick)
            if existing is not None:
                await asyncio.to_thread(self._crons.release, cron, tick, existing)
                return None
        try:
            run_id: str | None = await self._fire(cron, tick)
        except StewardError as exc:  # the cron's own fault (thread gone, busy, bad input)
            log.warning("cron %s could not start its run for %s: %s", cron.id, tick, exc)
            run_id = None
        await asyncio.to_thread(self._crons.release, cron, tick, run_id)
        if run_id is not None:
            log.info("cron %s fired tick %s: run %s", cron.id, tick_label(tick), run_id)
        return run_id
