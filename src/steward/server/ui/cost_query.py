"""The dashboard's cost view: spend and tokens per day by a dimension, and how close the
logged-in key is to each of its spend caps. Tenant-scoped like `/spend`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select

from steward.models.budget import NANO_USD, SpendScope
from steward.models.gateway import Gateway
from steward.store.database import Database
from steward.store.schema import SpendRecord

Dimension = Literal["agent", "user", "key", "tenant", "model"]
DIMENSIONS: tuple[Dimension, ...] = ("agent", "user", "key", "tenant", "model")
_COLUMNS = {
    "agent": SpendRecord.agent,
    "user": SpendRecord.user_id,
    "key": SpendRecord.key_id,
    "tenant": SpendRecord.tenant_id,
    "model": SpendRecord.model,
}


@dataclass(frozen=True)
class DaySpend:
    day: str
    group: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class CapUse:
    cap: str
    limit_usd: float
    spent_usd: float

    @property
    def share(self) -> float:
        return min(self.spent_usd / self.limit_usd, 1.0) if self.limit_usd > 0 else 1.0


def spend_by_day(db: Database, tenant_id: str, by: Dimension, days: int) -> list[DaySpend]:
    column = _COLUMNS[by]
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since -= timedelta(days=days - 1)
    # UTC days on both stores: PostgreSQL would otherwise cut days in its session's time zone.
    moment = SpendRecord.created_at
    day = func.date(moment if db.is_sqlite else func.timezone("UTC", moment))
    query = (
        select(
            day,
            column,
            func.count(),
            func.coalesce(func.sum(SpendRecord.input_tokens), 0),
            func.coalesce(func.sum(SpendRecord.output_tokens), 0),
            func.coalesce(func.sum(SpendRecord.cost_usd), 0.0),
        )
        .where(SpendRecord.tenant_id == tenant_id, SpendRecord.created_at >= since)
        .group_by(day, column)
        .order_by(day, column)
    )
    with db.session() as session:
        rows = session.execute(query).all()
    return [
        DaySpend(str(d), g if g is not None else "—", int(n), int(i), int(o), float(c))
        for d, g, n, i, o, c in rows
    ]


def daily_totals(rows: list[DaySpend], days: int) -> list[tuple[str, float]]:
    """(day, USD) for each of the last `days` days, zero where nothing was spent."""
    today = datetime.now(UTC).date()
    totals = {(today - timedelta(days=n)).isoformat(): 0.0 for n in range(days - 1, -1, -1)}
    for row in rows:
        if row.day in totals:
            totals[row.day] += row.cost_usd
    return list(totals.items())


async def cap_use(gateway: Gateway, tenant_id: str, key_id: str) -> list[CapUse]:
    """Each cap on this key and tenant today: its limit and what has been spent against it."""
    scope = SpendScope(tenant_id, key_id, None)
    remaining = await gateway.budget.remaining(scope)
    uses = []
    for limit in gateway.budget.limits(scope):
        limit_usd = limit.limit_nano / NANO_USD
        uses.append(CapUse(limit.cap, limit_usd, max(limit_usd - remaining[limit.cap], 0.0)))
    return uses
