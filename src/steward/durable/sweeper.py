"""The sweeper: recovers the runs of workers whose heartbeat went stale, one sweeper at a time.

Every worker runs one; a PostgreSQL advisory lock (SQLite: the write lock) lets one act per round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from steward.durable.workers import WorkerRegistry, db_now, lock_worker_row, process_alive
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
        """Recover dead workers' runs; None when another sweeper holds the turn.

        A worker is dead when its process is gone from this host (the kernel knows at once) or
        when it has not beaten for the stale time. A sweeper judges staleness only after
        beating without a gap for that long itself: after a database outage every heartbeat
        is old, and live workers need that long to show they are alive.
        """
        registry = self._registry
        if not registry.lease_valid():
            return None
        judge_staleness = registry.connected_for() >= registry.stale_after_s
        swept: list[str] = []
        with self._db.engine.begin() as conn:
            if not _take_turn(conn, registry.executor_id):
                return None
            now = db_now(conn)
            suspects = Worker.host == registry.host
            if judge_staleness:
                suspects = sa.or_(suspects, Worker.heartbeat_at < now - registry.stale_after_s)
            query = sa.select(Worker).where(
                Worker.state.in_(("live", "stopped")),
                Worker.executor_id != registry.executor_id,
                suspects,
            )
            if conn.dialect.name == "postgresql":
                # A worker re-registering holds its row: it will recover its own runs.
                query = query.with_for_update(skip_locked=True)
            for row in conn.execute(query).all():
                worker = row._mapping
                stale = judge_staleness and worker["heartbeat_at"] < now - registry.stale_after_s
                gone = worker["host"] == registry.host and not process_alive(
                    worker["pid"], worker["process_start"]
                )
                if not (stale or gone):
                    continue
                # The row stays locked while its runs move, so the same executor id cannot
                # register (and start dequeuing) halfway through the hand-off.
                moved = self._recover([worker["executor_id"]])
                conn.execute(
                    sa.update(Worker)
                    .where(
                        Worker.executor_id == worker["executor_id"],
                        Worker.incarnation == worker["incarnation"],
                    )
                    .values(state="swept", swept_by=registry.executor_id)
                )
                log.warning(
                    "worker %s is %s; %d runs back in the queue",
                    worker["executor_id"],
                    "gone" if gone else "stale",
                    moved,
                )
                swept.append(worker["executor_id"])
        return swept


def _take_turn(conn: sa.Connection, executor_id: str) -> bool:
    if conn.dialect.name == "postgresql":
        query = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
        taken = conn.execute(query, {"key": _SWEEP_LOCK_KEY})
        return bool(taken.scalar_one())
    lock_worker_row(conn, executor_id)  # SQLite: one writer at a time anyway
    return True
