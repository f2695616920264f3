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

from sqlalchemy import Connection, delete, select

from steward.models.budget.types import Limit
from steward.store.database import Database
from steward.store.schema import SpendCounter

_Request = tuple[list[Limit], int]


class _Statements:
    """The counters' SQL, written once for both databases in the driver's parameter style.

    Plain driver statements: building and compiling SQLAlchemy constructs per call cost more
    than the database's own work on the reservation path (0.7 ms of CPU against 0.15 ms)."""

    def __init__(self, sqlite: bool) -> None:
        self.p = p = "?" if sqlite else "%s"
        self.lock = "" if sqlite else " FOR UPDATE"  # SQLite: the transaction's write lock
        self.set_amount = (
            f"UPDATE spend_counters SET amount_nano = {p}, expires_at = COALESCE({p}, expires_at)"
            f' WHERE "key" = {p}'
        )
        self.restart = (
            f"UPDATE spend_counters SET amount_nano = 0, expires_at = {p}"
            f' WHERE "key" = {p} AND expires_at < {p}'
        )
        self.add = f'UPDATE spend_counters SET amount_nano = amount_nano + {p} WHERE "key" = {p}'

    def insert_missing(self, rows: int) -> str:
        values = ", ".join([f"({self.p}, 0, {self.p})"] * rows)
        return (
            f'INSERT INTO spend_counters ("key", amount_nano, expires_at) VALUES {values}'
            ' ON CONFLICT ("key") DO NOTHING'
        )

    def select(self, keys: int) -> str:
        marks = ", ".join([self.p] * keys)
        return (
            f'SELECT "key", amount_nano, expires_at FROM spend_counters WHERE "key" IN ({marks})'
            f' ORDER BY "key"{self.lock}'
        )


class DatabaseSpendCounters:
    """Rows of `spend_counters`. Counters are touched in key order so two transactions never
    wait on each other's rows crosswise; PostgreSQL re-checks the guard after a row lock wait,
    SQLite serialises writers, so neither lets two reservations pass a limit together."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sql = _Statements(db.is_sqlite)
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
        with self.db.engine.begin() as conn:
            # Writing first takes SQLite's write lock; PostgreSQL then locks the rows in key order.
            self._insert_missing(conn, every)
            rows = conn.exec_driver_sql(
                self._sql.select(len(every)), tuple(limit.counter for limit in every)
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
            for limit in every:
                if limit.counter in touched:
                    expires = limit.expires_at if limit.counter in expired else None
                    conn.exec_driver_sql(
                        self._sql.set_amount, (amounts[limit.counter], expires, limit.counter)
                    )
        self._maybe_expire()
        return refusals

    def _adjust(self, limits: Sequence[Limit], delta: int) -> None:
        now = time.time()
        with self.db.engine.begin() as conn:
            self._insert_missing(conn, limits)
            for limit in limits:
                # An expired counter starts over, as a reservation would start it.
                conn.exec_driver_sql(self._sql.restart, (limit.expires_at, limit.counter, now))
                conn.exec_driver_sql(self._sql.add, (delta, limit.counter))

    def _insert_missing(self, conn: Connection, limits: Sequence[Limit]) -> None:
        values = tuple(v for x in limits for v in (x.counter, x.expires_at))
        conn.exec_driver_sql(self._sql.insert_missing(len(limits)), values)

    def _maybe_expire(self) -> None:
        self._writes += 1
        if self._writes % 1024:
            return
        with self.db.session() as session:
            stale = select(SpendCounter.key).where(SpendCounter.expires_at < time.time())
            session.execute(delete(SpendCounter).where(SpendCounter.key.in_(stale)))


def _key(limit: Limit) -> str:
    return limit.counter
