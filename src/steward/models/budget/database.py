"""Spend counters in Steward's database (embedded mode, SQLite or PostgreSQL): a reservation is
one transaction of guarded `UPDATE ... WHERE amount + x <= limit`, all rows or none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from steward.models.budget.types import Limit
from steward.store.database import Database
from steward.store.schema import SpendCounter


class _Refused(Exception):
    def __init__(self, limit: Limit) -> None:
        self.limit = limit


class DatabaseSpendCounters:
    """Rows of `spend_counters`. Counters are touched in key order so two transactions never
    wait on each other's rows crosswise; PostgreSQL re-checks the guard after a row lock wait,
    SQLite serialises writers, so neither lets two reservations pass a limit together."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert = sqlite_insert if db.is_sqlite else pg_insert
        self._writes = 0

    async def reserve(self, limits: Sequence[Limit], amount_nano: int) -> Limit | None:
        return await asyncio.to_thread(self._reserve, sorted(limits, key=_key), amount_nano)

    async def adjust(self, limits: Sequence[Limit], delta_nano: int) -> None:
        await asyncio.to_thread(self._adjust, sorted(limits, key=_key), delta_nano)

    async def spent(self, counter: str) -> int:
        def read() -> int:
            with self.db.session() as session:
                row = session.get(SpendCounter, counter)
                if row is None or row.expires_at < time.time():
                    return 0
                return row.amount_nano

        return await asyncio.to_thread(read)

    async def aclose(self) -> None:
        return None

    def _reserve(self, limits: Sequence[Limit], amount: int) -> Limit | None:
        try:
            with self.db.session() as session:
                self._ensure_rows(session, limits)
                for limit in limits:
                    result = session.execute(
                        update(SpendCounter)
                        .where(
                            SpendCounter.key == limit.counter,
                            SpendCounter.amount_nano + amount <= limit.limit_nano,
                        )
                        .values(amount_nano=SpendCounter.amount_nano + amount)
                    )
                    if result.rowcount == 0:  # type: ignore[attr-defined]
                        raise _Refused(limit)  # rolls the whole reservation back
        except _Refused as refused:
            return refused.limit
        self._maybe_expire()
        return None

    def _adjust(self, limits: Sequence[Limit], delta: int) -> None:
        with self.db.session() as session:
            self._ensure_rows(session, limits)
            for limit in limits:
                session.execute(
                    update(SpendCounter)
                    .where(SpendCounter.key == limit.counter)
                    .values(amount_nano=SpendCounter.amount_nano + delta)
                )

    def _ensure_rows(self, session: Session, limits: Sequence[Limit]) -> None:
        now = time.time()
        for limit in limits:
            session.execute(
                self._insert(SpendCounter)
                .values(key=limit.counter, amount_nano=0, expires_at=limit.expires_at)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            # A counter kept past its window starts over (its key names the window, so this
            # only matters for keys reused after expiry).
            session.execute(
                update(SpendCounter)
                .where(SpendCounter.key == limit.counter, SpendCounter.expires_at < now)
                .values(amount_nano=0, expires_at=limit.expires_at)
            )

    def _maybe_expire(self) -> None:
        self._writes += 1
        if self._writes % 1024:
            return
        with self.db.session() as session:
            stale = select(SpendCounter.key).where(SpendCounter.expires_at < time.time())
            session.execute(delete(SpendCounter).where(SpendCounter.key.in_(stale)))


def _key(limit: Limit) -> str:
    return limit.counter
