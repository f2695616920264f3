"""The durable spend ledger: one row per priced model call, written in batches off the request
path, and the per-key/user/agent/tenant totals the API and `steward spend` read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select

from steward.store.database import Database
from steward.store.schema import SpendRecord

log = logging.getLogger("steward.spend")

GroupBy = Literal["key", "user", "agent", "tenant", "model"]
_COLUMNS = {
    "key": SpendRecord.key_id,
    "user": SpendRecord.user_id,
    "agent": SpendRecord.agent,
    "tenant": SpendRecord.tenant_id,
    "model": SpendRecord.model,
}


@dataclass(frozen=True)
class SpendTotal:
    group: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float

    def to_json(self) -> dict[str, object]:
        return self.__dict__.copy()


class SpendLedger:
    """Records are queued by `add` (never blocking a call) and flushed every `interval_s`."""

    def __init__(self, db: Database, *, interval_s: float = 0.2) -> None:
        self.db = db
        self.interval_s = interval_s
        self._pending: list[SpendRecord] = []
        self._task: asyncio.Task[None] | None = None
        # One batch written at a time, so a flush also waits for the batch another flush (the
        # background writer's) has in flight: after `flush()` every earlier record is readable.
        self._writing = asyncio.Lock()

    def add(self, record: SpendRecord) -> None:
        self._pending.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        """Write every record added so far; returns once they are all in the database."""
        async with self._writing:
            batch, self._pending = self._pending, []
            if batch:
                await asyncio.to_thread(self._write, batch)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Synchronously: at shutdown the loop's default executor may already be gone.
        batch, self._pending = self._pending, []
        if batch:
            self._write(batch)

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except Exception:  # a lost batch must not kill the writer; the counters still hold
                log.exception("could not write spend records")

    def _write(self, batch: list[SpendRecord]) -> None:
        with self.db.session() as session:
            session.add_all(batch)

    def totals(
        self,
        tenant_id: str | None,
        group_by: GroupBy,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[SpendTotal]:
        """Totals per group; `tenant_id=None` only for operators reading every tenant (CLI)."""
        column = _COLUMNS[group_by]
        query = select(
            column,
            func.count(),
            func.coalesce(func.sum(SpendRecord.input_tokens), 0),
            func.coalesce(func.sum(SpendRecord.output_tokens), 0),
            func.coalesce(func.sum(SpendRecord.cache_read_tokens), 0),
            func.coalesce(func.sum(SpendRecord.cache_write_tokens), 0),
            func.coalesce(func.sum(SpendRecord.cost_usd), 0.0),
        ).group_by(column)
        if tenant_id is not None:
            query = query.where(SpendRecord.tenant_id == tenant_id)
        if since is not None:
            query = query.where(SpendRecord.created_at >= since)
        if until is not None:
            query = query.where(SpendRecord.created_at < until)
        with self.db.session() as session:
            rows = session.execute(query.order_by(column)).all()
        return [
            SpendTotal(
                row[0],
                int(row[1]),
                int(row[2]),
                int(row[3]),
                int(row[4]),
                int(row[5]),
                round(float(row[6]), 9),
            )
            for row in rows
        ]
