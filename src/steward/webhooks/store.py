"""Durable webhook state: one delivery per finished run that named a webhook, and every attempt.

Deliveries are created from the run rows (so a crash between a run's end and its delivery loses
nothing) and claimed with a lease, so exactly one process attempts a delivery at a time and a
dead process's claim lapses on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from steward.store.database import Database
from steward.store.runs import ACTIVE
from steward.store.schema import OutboundWebhook, OutboundWebhookAttempt, Run, utcnow


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes that are UTC; PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Due:
    run_id: str
    tenant_id: str
    url: str
    message_id: str
    attempt: int  # the number of the attempt about to be made, from 1


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def discover(self, limit: int = 100) -> int:
        """Create the deliveries of runs that ended since the last look; returns how many."""
        query = (
            select(Run.id, Run.tenant_id, Run.webhook)
            .where(
                Run.webhook.is_not(None),
                Run.status.not_in(ACTIVE),
                ~exists().where(OutboundWebhook.run_id == Run.id),
            )
            .limit(limit)
        )
        with self.db.session() as session:
            found = list(session.execute(query))
        created = 0
        for run_id, tenant_id, url in found:
            try:
                with self.db.session() as session:
                    session.add(
                        OutboundWebhook(
                            run_id=run_id,
                            tenant_id=tenant_id,
                            url=url,
                            message_id=f"msg_{run_id}",
                            state="pending",
                            attempts=0,
                            next_attempt_at=utcnow(),
                        )
                    )
                created += 1
            except IntegrityError:
                pass  # another process created it first
        return created

    def claim_due(self, lease_s: float, limit: int = 20) -> list[Due]:
        """Lease the deliveries whose next attempt is due."""
        now = utcnow()
        with self.db.session() as session:
            candidates = list(
                session.scalars(
                    select(OutboundWebhook)
                    .where(
                        OutboundWebhook.state == "pending",
                        OutboundWebhook.next_attempt_at <= now,
                        or_(
                            OutboundWebhook.leased_until.is_(None),
                            OutboundWebhook.leased_until <= now,
                        ),
                    )
                    .order_by(OutboundWebhook.next_attempt_at)
                    .limit(limit)
                )
            )
        claimed: list[Due] = []
        for row in candidates:
            with self.db.session() as session:
                taken = _rowcount(
                    session.execute(
                        update(OutboundWebhook)
                        .where(
                            OutboundWebhook.run_id == row.run_id,
                            OutboundWebhook.state == "pending",
                            OutboundWebhook.attempts == row.attempts,
                            or_(
                                OutboundWebhook.leased_until.is_(None),
                                OutboundWebhook.leased_until <= now,
                            ),
                        )
                        .values(leased_until=now + timedelta(seconds=lease_s))
                    )
                )
            if taken == 1:
                claimed.append(
                    Due(row.run_id, row.tenant_id, row.url, row.message_id, row.attempts + 1)
                )
        return claimed

    def next_due_at(self) -> datetime | None:
        with self.db.session() as session:
            moment = session.scalar(
                select(OutboundWebhook.next_attempt_at)
                .where(OutboundWebhook.state == "pending")
                .order_by(OutboundWebhook.next_attempt_at)
                .limit(1)
            )
        return as_utc(moment) if moment is not None else None

    def record(
        self,
        due: Due,
        *,
        started_at: datetime,
        status_code: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
    ) -> str:
        """Record one attempt and move the delivery on; returns its new state."""
        delivered = status_code is not None and 200 <= status_code < 300
        state = "delivered" if delivered else ("pending" if next_attempt_at else "failed")
        now = utcnow()
        with self.db.session() as session:
            session.add(
                OutboundWebhookAttempt(
                    tenant_id=due.tenant_id,
                    run_id=due.run_id,
                    url=due.url,
                    attempt=due.attempt,
                    status_code=status_code,
                    error=error,
                    started_at=started_at,
                    finished_at=now,
                )
            )
            session.execute(
                update(OutboundWebhook)
                .where(OutboundWebhook.run_id == due.run_id)
                .values(
                    state=state,
                    attempts=due.attempt,
                    next_attempt_at=next_attempt_at or now,
                    leased_until=None,
                    updated_at=now,
                )
            )
        return state

    def run(self, tenant_id: str, run_id: str) -> Run | None:
        with self.db.session() as session:
            return session.scalar(select(Run).where(Run.tenant_id == tenant_id, Run.id == run_id))

    def deliveries_of(self, tenant_id: str, run_id: str) -> dict[str, Any] | None:
        """The delivery of a run and its attempts, for the API; None if none was created yet."""
        with self.db.session() as session:
            delivery = session.scalar(
                select(OutboundWebhook).where(
                    OutboundWebhook.tenant_id == tenant_id, OutboundWebhook.run_id == run_id
                )
            )
            if delivery is None:
                return None
            attempts = list(
                session.scalars(
                    select(OutboundWebhookAttempt)
                    .where(
                        OutboundWebhookAttempt.tenant_id == tenant_id,
                        OutboundWebhookAttempt.run_id == run_id,
                    )
                    .order_by(OutboundWebhookAttempt.attempt)
                )
            )
        return {
            "state": delivery.state,
            "message_id": delivery.message_id,
            "attempts": delivery.attempts,
            "next_attempt_at": (
                as_utc(delivery.next_attempt_at).isoformat()
                if delivery.state == "pending"
                else None
            ),
            "history": [
                {
                    "attempt": a.attempt,
                    "url": a.url,
                    "status_code": a.status_code,
                    "error": a.error,
                    "started_at": as_utc(a.started_at).isoformat(),
                    "finished_at": as_utc(a.finished_at).isoformat(),
                }
                for a in attempts
            ],
        }


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)
