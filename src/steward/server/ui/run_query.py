"""The dashboard's run list: filters, sort and paging, in SQL, always within one tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, String, cast, extract, func, select
from sqlalchemy.sql.elements import KeyedColumnElement

from steward.store.database import Database
from steward.store.schema import Run

PAGE_SIZE = 25
SortKey = Literal["created", "cost", "duration", "steps", "agent", "status", "tokens"]


class RunFilters(BaseModel):
    """The query string of `/ui/runs`; empty fields mean "any"."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    agent: str | None = Field(default=None, max_length=200)
    status: str | None = Field(default=None, max_length=32)
    stop_reason: str | None = Field(default=None, max_length=64)
    user: str | None = Field(default=None, max_length=200)
    thread: str | None = Field(default=None, max_length=64)
    since: datetime | None = None
    until: datetime | None = None
    min_cost: float | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)
    min_duration: float | None = Field(default=None, ge=0, description="seconds")
    max_duration: float | None = Field(default=None, ge=0, description="seconds")
    q: str | None = Field(default=None, max_length=200, description="text in the input")
    sort: SortKey = "created"
    order: Literal["asc", "desc"] = "desc"
    page: int = Field(default=1, ge=1, le=100_000)

    @classmethod
    def parse(cls, params: dict[str, str]) -> RunFilters:
        """From a query string: blank fields are left out, so they mean "any"."""
        return cls.model_validate({k: v for k, v in params.items() if v.strip()})

    def query_string(self, **changes: Any) -> str:
        """This filter set with `changes`, as a query string for links (sort, page)."""
        from urllib.parse import urlencode

        values = {**self.model_dump(exclude_none=True), **changes}
        values = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
        return urlencode(values)


def duration_s(dialect: str) -> ColumnElement[Any]:
    """A run's wall time in seconds in the database's own date arithmetic."""
    if dialect == "sqlite":
        return (func.julianday(Run.ended_at) - func.julianday(Run.started_at)) * 86400.0
    return extract("epoch", Run.ended_at - Run.started_at)


def list_runs(db: Database, tenant_id: str, filters: RunFilters) -> tuple[list[Run], bool]:
    """One page of the tenant's runs and whether another page follows."""
    duration = duration_s(db.engine.dialect.name)
    query = select(Run).where(Run.tenant_id == tenant_id)
    for column, wanted in (
        (Run.agent, filters.agent),
        (Run.status, filters.status),
        (Run.stop_reason, filters.stop_reason),
        (Run.user_id, filters.user),
        (Run.thread_id, filters.thread),
    ):
        if wanted is not None:
            query = query.where(column == wanted)
    if filters.since is not None:
        query = query.where(Run.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Run.created_at <= filters.until)
    if filters.min_cost is not None:
        query = query.where(Run.cost_usd >= filters.min_cost)
    if filters.max_cost is not None:
        query = query.where(Run.cost_usd <= filters.max_cost)
    if filters.min_duration is not None:
        query = query.where(duration >= filters.min_duration)
    if filters.max_duration is not None:
        query = query.where(duration <= filters.max_duration)
    if filters.q is not None:
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(cast(Run.input, String).ilike(pattern + "%", escape="\\"))
    order_by = _sort_column(filters.sort, duration)
    direction = order_by.asc() if filters.order == "asc" else order_by.desc()
    query = query.order_by(direction, Run.id).limit(PAGE_SIZE + 1)
    query = query.offset((filters.page - 1) * PAGE_SIZE)
    with db.session() as session:
        runs = list(session.scalars(query))
    return runs[:PAGE_SIZE], len(runs) > PAGE_SIZE


def _sort_column(
    sort: SortKey, duration: ColumnElement[Any]
) -> ColumnElement[Any] | KeyedColumnElement[Any]:
    columns: dict[str, Any] = {
        "created": Run.created_at,
        "cost": Run.cost_usd,
        "duration": duration,
        "steps": Run.steps,
        "agent": Run.agent,
        "status": Run.status,
        "tokens": Run.input_tokens + Run.output_tokens,
    }
    chosen: ColumnElement[Any] = columns[sort]
    return chosen


def run_duration_s(run: Run) -> float | None:
    if run.started_at is None or run.ended_at is None:
        return None
    return (run.ended_at - run.started_at).total_seconds()
