"""Spend counters in Steward's database (embedded mode, SQLite or PostgreSQL): a reservation is
all of its counters or none, decided under the rows' write locks.

Reservations made while one is being written wait and go together in the next transaction
(group commit): each is still decided on its own, in arrival order, against the amounts the
earlier ones left, so the cap holds exactly as with one transaction each. Under load this turns
fifty concurrent writers fighting over SQLite's single write lock into one writer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from steward.models.budget.types import Limit
from steward.store.database import Database
from steward.store.schema import SpendCounter

_Request = tuple[list[Limit], int]
_TABLE = cast(Table, SpendCounter.__table__)


class DatabaseSpendCounters:
    """Rows of `spend_counters`. Counters are touched in key order so two transactions never
    wait on each other's rows crosswise; PostgreSQL re-checks the guard after a row lock wait,
    SQLite serialises writers, so neither lets two reservations pass a limit together."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert = sqlite_insert if db.is_sqlite else pg_insert
        self._writes = 0
        self._waiting: list[tuple[_Request, asyncio.Future[Limit | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def reserve(self, limits: Sequence[Limit], amount_nano: int) -> Limit | None:
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[Limit | None] = loop.create_future()
        self._waiting.append(((sorted(limits, key=_key), amount_nano), decided))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_reservations())
        return await decided

    async def _write_reservations(self) -> None:
        batch: list[tuple[_Request, asyncio.Future[Limit | None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                batch = [(request, decided) for request, decided in batch if not decided.done()]
                try:
                    refusals = await asyncio.to_thread(self._reserve, [r for r, _ in batch])
                except Exception as exc:
                    for _, decided in batch:
                        if not decided.done():
                            decided.set_exception(exc)
                    continue
                for (_, decided), refused in zip(batch, refusals, strict=True):
                    if not decided.done():
                        decided.set_result(refused)
                batch = []
        finally:  # cancelled (shutdown): nobody may wait forever
            for _, decided in [*batch, *self._waiting]:
                if not decided.done():
                    decided.cancel()

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

    def _reserve(self, requests: Sequence[_Request]) -> list[Limit | None]:
        """Decide the requests in order in one transaction; the refusing limit of each, or None."""
        every = sorted(
            {limit.counter: limit for limits, _ in requests for limit in limits}.values(), key=_key
        )
        now = time.time()
        refusals: list[Limit | None] = []
        # Core statements on one connection: the ORM's per-statement work was most of the cost.
        with self.db.engine.begin() as conn:
            # Writing first takes SQLite's write lock; PostgreSQL then locks the rows in key order.
            self._insert_missing(conn, every)
            rows = conn.execute(
                select(_TABLE.c.key, _TABLE.c.amount_nano, _TABLE.c.expires_at)
                .where(_TABLE.c.key.in_([limit.counter for limit in every]))
                .order_by(_TABLE.c.key)
                .with_for_update()
            ).all()
            # A counter kept past its window starts over (its key names the window, so this
            # only matters for keys reused after expiry).
            expired = {key for key, _, expires_at in rows if expires_at < now}
            amounts = {key: 0 if key in expired else amount for key, amount, _ in rows}
            touched: set[str] = set()
            for limits, amount in requests:
                refused = next(
                    (x for x in limits if amounts[x.counter] + amount > x.limit_nano), None
                )
                if refused is None:
                    for limit in limits:
                        amounts[limit.counter] += amount
                        touched.add(limit.counter)
                refusals.append(refused)
            window = {limit.counter: limit.expires_at for limit in every}
            for counter in sorted(touched):
                values: dict[str, float] = {"amount_nano": amounts[counter]}
                if counter in expired:
                    values["expires_at"] = window[counter]
                conn.execute(update(_TABLE).where(_TABLE.c.key == counter).values(**values))
        self._maybe_expire()
        return refusals

    def _adjust(self, limits: Sequence[Limit], delta: int) -> None:
        now = time.time()
        with self.db.engine.begin() as conn:
            self._insert_missing(conn, limits)
            for limit in limits:
                conn.execute(  # an expired counter starts over, as a reservation would start it
                    update(_TABLE)
                    .where(_TABLE.c.key == limit.counter, _TABLE.c.expires_at < now)
                    .values(amount_nano=0, expires_at=limit.expires_at)
                )
                conn.execute(
                    update(_TABLE)
                    .where(_TABLE.c.key == limit.counter)
                    .values(amount_nano=_TABLE.c.amount_nano + delta)
                )

    def _insert_missing(self, conn: Connection, limits: Sequence[Limit]) -> None:
        rows = [{"key": x.counter, "amount_nano": 0, "expires_at": x.expires_at} for x in limits]
        conn.execute(
            self._insert(_TABLE).values(rows).on_conflict_do_nothing(index_elements=["key"])
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
