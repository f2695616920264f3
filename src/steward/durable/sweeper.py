"""The sweeper: recovers the runs of workers whose heartbeat went stale, one sweeper at a time.

Every worker runs one; a PostgreSQL advisory lock (SQLite: the write lock) lets one act per round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from steward.durable.workers import WorkerRegistry, db_now, lock_worker_row
from steward.store.database import Database
from steward.store.schema import Worker

log = logging.getLogger("steward.sweeper")

_SWEEP_LOCK_KEY = 0x5357_4550  # "SWEP"

Recover = Callable[[list[str]], int]
"""Hand the pending runs of these executor ids to the queue; returns how many moved."""


class Sweeper:
    def __init__(
        self,
        db: Database,
        registry: WorkerRegistry,
        recover: Recover,
        *,
        interval_s: float,
        after_sweep: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recover = recover
        self._interval_s = interval_s
        self.after_sweep = after_sweep

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                acted = await asyncio.to_thread(self.sweep_once)
                if acted is not None and self.after_sweep is not None:
                    await self.after_sweep()
            except Exception:  # a database outage must not end the sweeper
                log.warning("sweep failed", exc_info=True)

    def sweep_once(self) -> list[str] | None:
        """Recover stale workers' runs; None when another sweeper holds the turn.

        A sweeper judges others only after beating without a gap for the whole stale time
        itself: after a database outage every heartbeat is old, and live workers need that
        long to show they are alive.
        """
        registry = self._registry
        if registry.connected_for() < registry.stale_after_s or not registry.lease_valid():
            return None
        swept: list[str] = []
        with self._db.engine.begin() as conn:
            if not _take_turn(conn, registry.executor_id):
                return None
            now = db_now(conn)
            query = sa.select(Worker.executor_id, Worker.incarnation).where(
                Worker.state.in_(("live", "stopped")),
                Worker.heartbeat_at < now - registry.stale_after_s,
                Worker.executor_id != registry.executor_id,
            )
            if conn.dialect.name == "postgresql":
                # A worker re-registering holds its row: it will recover its own runs.
                query = query.with_for_update(skip_locked=True)
            for executor_id, incarnation in conn.execute(query).all():
                # The row stays locked while its runs move, so the same executor id cannot
                # register (and start dequeuing) halfway through the hand-off.
                moved = self._recover([executor_id])
                conn.execute(
                    sa.update(Worker)
                    .where(Worker.executor_id == executor_id, Worker.incarnation == incarnation)
                    .values(state="swept", swept_by=registry.executor_id)
                )
                log.warning("worker %s went stale; %d runs back in the queue", executor_id, moved)
                swept.append(executor_id)
        return swept


def _take_turn(conn: sa.Connection, executor_id: str) -> bool:
    if conn.dialect.name == "postgresql":
        query = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
        taken = conn.execute(query, {"key": _SWEEP_LOCK_KEY})
        return bool(taken.scalar_one())
    lock_worker_row(conn, executor_id)  # SQLite: one writer at a time anyway
    return True
