"""Crons: schedules that start a normal run at each tick, per tenant.

`next_run_at` is both the schedule's next tick and the claim: a scheduler fires a tick only if
its `UPDATE … SET next_run_at=<following tick>, claimed_tick=<tick> WHERE id=… AND
next_run_at=<tick> AND claimed_tick IS NULL` changed a row, so among any number of processes
exactly one fires it. The claim holds until the run is recorded (`release`); a claimer that died
in between leaves `claimed_tick` behind, and once `claim_until` passes another scheduler takes it
over (`take_over`) and starts the run unless one already exists for that tick.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from sqlalchemy import ColumnElement, func, select, update

from steward.store.assistants import contains
from steward.store.database import Database
from steward.store.platform_tables import CronRow
from steward.store.schema import Run, utcnow

CronSortBy = Literal[
    "cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"
]
_SORT_COLUMNS = {
    "cron_id": CronRow.id,
    "assistant_id": CronRow.assistant_id,
    "thread_id": CronRow.thread_id,
    "created_at": CronRow.created_at,
    "updated_at": CronRow.updated_at,
    "next_run_date": CronRow.next_run_at,
    "end_time": CronRow.end_time,
}


class InvalidSchedule(ValueError):
    pass


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"unknown time zone {name!r}") from exc


def check_schedule(schedule: str, timezone: str | None) -> None:
    """A standard 5-field cron expression (or an alias such as `@hourly`), or 6 fields whose
    last one is seconds, that has a next tick at all (`0 0 31 2 *` has none)."""
    fields = len(schedule.split())
    alias = fields == 1 and schedule.startswith("@")
    if not (alias or fields in (5, 6)) or not croniter.is_valid(schedule):
        raise InvalidSchedule(f"not a cron expression: {schedule!r}")
    try:
        local = datetime.now(UTC).astimezone(zone(timezone))
        croniter(schedule, local).get_next(datetime)
    except CroniterError as exc:
        raise InvalidSchedule(f"cron expression {schedule!r} never fires") from exc


def next_tick(
    schedule: str, timezone: str | None, after: datetime, end_time: datetime | None
) -> datetime | None:
    """The first tick strictly after `after` (in the schedule's zone), in UTC; None past end
    (or for a schedule that has no more ticks)."""
    local = aware(after).astimezone(zone(timezone))
    try:
        tick: datetime = croniter(schedule, local).get_next(datetime)
    except CroniterError:
        return None
    tick = tick.astimezone(UTC)
    if end_time is not None and tick > aware(end_time):
        return None
    return tick


@dataclass(frozen=True)
class Cron:
    id: str
    tenant_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    end_time: datetime | None
    enabled: bool
    payload: dict[str, Any]
    metadata: dict[str, Any]
    user_id: str | None
    on_run_completed: str | None
    next_run_at: datetime | None
    claimed_tick: datetime | None
    claim_until: datetime | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "cron_id": self.id,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "on_run_completed": self.on_run_completed,
            "end_time": _iso(self.end_time),
            "schedule": self.schedule,
            "timezone": self.timezone,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "payload": self.payload,
            "user_id": self.user_id,
            "next_run_date": _iso(self.next_run_at),
            "metadata": self.metadata,
            "enabled": self.enabled,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else aware(moment).isoformat()


def _maybe(moment: datetime | None) -> datetime | None:
    return None if moment is None else aware(moment)


def _cron(row: CronRow) -> Cron:
    """A snapshot with UTC-aware times (SQLite hands back naive ones; both store the same)."""
    return Cron(
        id=row.id,
        tenant_id=row.tenant_id,
        assistant_id=row.assistant_id,
        thread_id=row.thread_id,
        schedule=row.schedule,
        timezone=row.timezone,
        end_time=_maybe(row.end_time),
        enabled=row.enabled,
        payload=dict(row.payload or {}),
        metadata=dict(row.meta or {}),
        user_id=row.user_id,
        on_run_completed=row.on_run_completed,
        next_run_at=_maybe(row.next_run_at),
        claimed_tick=_maybe(row.claimed_tick),
        claim_until=_maybe(row.claim_until),
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


@dataclass(frozen=True)
class CronFilters:
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None

    def conditions(self, tenant_id: str) -> list[ColumnElement[bool]]:
        found = [CronRow.tenant_id == tenant_id]
        if self.assistant_id is not None:
            found.append(CronRow.assistant_id == self.assistant_id)
        if self.thread_id is not None:
            found.append(CronRow.thread_id == self.thread_id)
        if self.enabled is not None:
            found.append(CronRow.enabled == self.enabled)
        return found


class CronStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- API -----------------------------------------------------------------------------------

    def create(
        self,
        tenant_id: str,
        *,
        assistant_id: str,
        thread_id: str | None,
        schedule: str,
        timezone: str | None,
        end_time: datetime | None,
        enabled: bool,
        payload: dict[str, Any],
        metadata: dict[str, Any],
        user_id: str | None,
        on_run_completed: str | None,
    ) -> Cron:
        check_schedule(schedule, timezone)
        now = utcnow()
        row = CronRow(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            assistant_id=assistant_id,
            thread_id=thread_id,
            schedule=schedule,
            timezone=timezone,
            end_time=end_time,
            enabled=enabled,
            payload=payload,
            meta=metadata,
            user_id=user_id,
            on_run_completed=on_run_completed,
            next_run_at=next_tick(schedule, timezone, now, end_time),
            created_at=now,
            updated_at=now,
        )
        with self.db.session() as session:
            session.add(row)
            return _cron(row)

    def get(self, tenant_id: str, cron_id: str) -> Cron | None:
        with self.db.session() as session:
            row = session.get(CronRow, cron_id)
            return _cron(row) if row is not None and row.tenant_id == tenant_id else None

    def update(self, tenant_id: str, cron_id: str, changes: dict[str, Any]) -> Cron | None:
        """Apply `changes` (columns; `payload` merged) and reschedule from now."""
        with self.db.session() as session:
            row = session.get(CronRow, cron_id, with_for_update=True)
            if row is None or row.tenant_id != tenant_id:
                return None
            schedule = changes.get("schedule", row.schedule)
            timezone = changes.get("timezone", row.timezone)
            check_schedule(schedule, timezone)
            for name in ("schedule", "timezone", "end_time", "enabled", "on_run_completed"):
                if name in changes:
                    setattr(row, name, changes[name])
            if "metadata" in changes:
                row.meta = changes["metadata"]
            if changes.get("payload"):
                row.payload = {**(row.payload or {}), **changes["payload"]}
            now = utcnow()
            row.updated_at = now
            row.next_run_at = next_tick(row.schedule, row.timezone, now, row.end_time)
            return _cron(row)

    def delete(self, tenant_id: str, cron_id: str) -> bool:
        with self.db.session() as session:
            row = session.get(CronRow, cron_id)
            if row is None or row.tenant_id != tenant_id:
                return False
            session.delete(row)
            return True

    def search(
        self,
        tenant_id: str,
        filters: CronFilters,
        *,
        limit: int,
        offset: int,
        sort_by: CronSortBy = "created_at",
        descending: bool = True,
    ) -> list[Cron]:
        column = _SORT_COLUMNS[sort_by]
        query = (
            select(CronRow)
            .where(*filters.conditions(tenant_id))
            .order_by(column.desc() if descending else column.asc(), CronRow.id)
        )
        found: list[Cron] = []
        skipped = 0
        with self.db.session() as session:
            for row in session.scalars(query.execution_options(yield_per=500)):
                if not contains(row.meta or {}, filters.metadata):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(_cron(row))
                if len(found) >= limit:
                    break
        return found

    def count(self, tenant_id: str, filters: CronFilters) -> int:
        with self.db.session() as session:
            if not filters.metadata:
                query = select(CronRow).where(*filters.conditions(tenant_id)).subquery()
                return int(session.scalar(select(func.count()).select_from(query)) or 0)
            rows = session.scalars(select(CronRow).where(*filters.conditions(tenant_id)))
            return sum(1 for row in rows if contains(row.meta or {}, filters.metadata))

    # -- scheduling ----------------------------------------------------------------------------

    def due(self, now: datetime, limit: int = 100) -> list[Cron]:
        """Enabled crons whose tick has come, and claims whose claimer has gone quiet."""
        with self.db.session() as session:
            rows = session.scalars(
                select(CronRow)
                .where(
                    CronRow.enabled.is_(True),
                    (
                        (CronRow.claimed_tick.is_(None) & (CronRow.next_run_at <= now))
                        | (CronRow.claimed_tick.is_not(None) & (CronRow.claim_until <= now))
                    ),
                )
                .order_by(CronRow.next_run_at)
                .limit(limit)
            )
            return [_cron(row) for row in rows]

    def earliest(self) -> datetime | None:
        """When the next tick of any enabled cron, or the end of any claim, comes."""
        with self.db.session() as session:
            tick = session.scalar(
                select(func.min(CronRow.next_run_at)).where(
                    CronRow.enabled.is_(True), CronRow.claimed_tick.is_(None)
                )
            )
            claim = session.scalar(
                select(func.min(CronRow.claim_until)).where(CronRow.claimed_tick.is_not(None))
            )
        moments = [aware(m) for m in (tick, claim) if m is not None]
        return min(moments) if moments else None

    def claim(self, cron: Cron, now: datetime, lease_s: float) -> bool:
        """Take `cron`'s due tick; True for exactly one caller per tick."""
        assert cron.next_run_at is not None
        following = next_tick(
            cron.schedule, cron.timezone, max(aware(cron.next_run_at), now), cron.end_time
        )
        with self.db.session() as session:
            result = session.execute(
                update(CronRow)
                .where(
                    CronRow.id == cron.id,
                    CronRow.next_run_at == cron.next_run_at,
                    CronRow.claimed_tick.is_(None),
                    CronRow.enabled.is_(True),
                )
                .values(
                    next_run_at=following,
                    claimed_tick=cron.next_run_at,
                    claim_until=now + timedelta(seconds=lease_s),
                )
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0) == 1

    def take_over(self, cron: Cron, now: datetime, lease_s: float) -> bool:
        """Take a claim whose holder let `claim_until` pass; True for exactly one caller."""
        with self.db.session() as session:
            result = session.execute(
                update(CronRow)
                .where(
                    CronRow.id == cron.id,
                    CronRow.claimed_tick == cron.claimed_tick,
                    CronRow.claim_until == cron.claim_until,
                )
                .values(claim_until=now + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0) == 1

    def release(self, cron: Cron, tick: datetime, run_id: str | None) -> None:
        with self.db.session() as session:
            session.execute(
                update(CronRow)
                .where(CronRow.id == cron.id, CronRow.claimed_tick == tick)
                .values(claimed_tick=None, claim_until=None, last_run_id=run_id)
                .execution_options(synchronize_session=False)
            )

    def run_of_tick(self, cron: Cron, tick: datetime) -> str | None:
        """The run an earlier claimer started for `tick`, if it got that far."""
        with self.db.session() as session:
            return session.scalar(
                select(Run.id).where(
                    Run.tenant_id == cron.tenant_id,
                    Run.meta["cron_id"].as_string() == cron.id,
                    Run.meta["cron_tick"].as_string() == tick_label(tick),
                )
            )


def tick_label(tick: datetime) -> str:
    return aware(tick).astimezone(UTC).isoformat()
