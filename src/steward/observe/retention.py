"""Retention: per-tenant limits on spans, captured message content and run payloads.

A policy gives, for each kind, a number of days and a maximum count (either may be unset). The
job deletes spans past their limits, strips `gen_ai.input/output.messages` from spans past the
content limits, and empties the input and output of ended runs past the payload limits; run
records themselves (status, usage, cost) stay. It works in small batches, one short
transaction each, so neither SQLite nor PostgreSQL holds a lock for long; every step is
idempotent, so processes running it at the same time only repeat each other's work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, delete, null, or_, select, update
from sqlalchemy.orm import Session

from steward.observe import genai
from steward.store.database import Database
from steward.store.schema import RetentionPolicyRow, Run, Span, Tenant

log = logging.getLogger(__name__)

DEFAULT_TENANT = "*"  # the policy row for tenants without their own
CONTENT_KEYS = (genai.GEN_AI_INPUT_MESSAGES, genai.GEN_AI_OUTPUT_MESSAGES)


@dataclass(frozen=True)
class RetentionPolicy:
    spans_days: int | None = None
    spans_max: int | None = None
    content_days: int | None = None
    content_max: int | None = None
    payloads_days: int | None = None
    payloads_max: int | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


@dataclass
class RetentionReport:
    spans_deleted: int = 0
    content_stripped: int = 0
    payloads_cleared: int = 0
    tenants: list[str] = field(default_factory=list)


class RetentionPolicies:
    """The `retention_policies` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, tenant_id: str, policy: RetentionPolicy) -> None:
        with self._db.session() as session:
            row = session.get(RetentionPolicyRow, tenant_id)
            if row is None:
                row = RetentionPolicyRow(tenant_id=tenant_id)
                session.add(row)
            for name, value in asdict(policy).items():
                setattr(row, name, value)
            row.updated_at = datetime.now(UTC)

    def get(self, tenant_id: str) -> RetentionPolicy | None:
        with self._db.session() as session:
            row = session.get(RetentionPolicyRow, tenant_id)
            return None if row is None else _policy(row)

    def effective(self) -> dict[str, RetentionPolicy]:
        """Each tenant's policy: its own row, else the `*` row; tenants with neither are absent."""
        with self._db.session() as session:
            rows = {
                row.tenant_id: _policy(row) for row in session.scalars(select(RetentionPolicyRow))
            }
            tenants = list(session.scalars(select(Tenant.id)))
        fallback = rows.get(DEFAULT_TENANT)
        chosen = {tenant: rows.get(tenant, fallback) for tenant in tenants}
        return {tenant: policy for tenant, policy in chosen.items() if policy is not None}


class RetentionJob:
    """Enforces every tenant's policy; `run_forever` repeats it every `interval_s`."""

    def __init__(
        self,
        db: Database,
        *,
        batch: int = 500,
        interval_s: float = 3600.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self.batch = batch
        self.interval_s = interval_s
        self._now = now
        self.policies = RetentionPolicies(db)

    def enforce(self) -> RetentionReport:
        report = RetentionReport()
        for tenant_id, policy in self.policies.effective().items():
            report.tenants.append(tenant_id)
            report.spans_deleted += self._spans(tenant_id, policy)
            report.content_stripped += self._content(tenant_id, policy)
            report.payloads_cleared += self._payloads(tenant_id, policy)
        return report

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)  # a process starting does no extra work
            try:
                report = await asyncio.to_thread(self.enforce)
                if report.spans_deleted or report.content_stripped or report.payloads_cleared:
                    log.info("retention: %s", report)
            except Exception:
                log.exception("the retention job failed; it tries again next interval")

    # -- spans ---------------------------------------------------------------------------------

    def _spans(self, tenant_id: str, policy: RetentionPolicy) -> int:
        done = 0
        if policy.spans_days is not None:
            cutoff = self._cutoff_ns(policy.spans_days)
            done += self._repeat(
                lambda session: self._delete_spans(
                    session,
                    select(Span.span_id)
                    .where(Span.tenant_id == tenant_id, Span.start_ns < cutoff)
                    .limit(self.batch),
                )
            )
        if policy.spans_max is not None:
            done += self._repeat(
                lambda session: self._delete_spans(
                    session, _beyond_newest(tenant_id, policy.spans_max or 0, self.batch)
                )
            )
        return done

    @staticmethod
    def _delete_spans(session: Session, ids_query: Any) -> int:
        ids = list(session.scalars(ids_query))
        if ids:
            session.execute(delete(Span).where(Span.span_id.in_(ids)))
        return len(ids)

    # -- captured content ----------------------------------------------------------------------

    def _content(self, tenant_id: str, policy: RetentionPolicy) -> int:
        done = 0
        with_content = or_(
            *(cast(Span.attributes, String).like(f'%"{key}"%') for key in CONTENT_KEYS)
        )
        if policy.content_days is not None:
            cutoff = self._cutoff_ns(policy.content_days)
            query = (
                select(Span)
                .where(Span.tenant_id == tenant_id, Span.start_ns < cutoff, with_content)
                .limit(self.batch)
            )
            done += self._repeat(lambda session: _strip(session, query))
        if policy.content_max is not None:
            keep = policy.content_max
            query = (
                select(Span)
                .where(Span.tenant_id == tenant_id, with_content)
                .order_by(Span.start_ns.desc(), Span.span_id.desc())
                .offset(keep)
                .limit(self.batch)
            )
            done += self._repeat(lambda session: _strip(session, query))
        return done

    # -- run payloads --------------------------------------------------------------------------

    def _payloads(self, tenant_id: str, policy: RetentionPolicy) -> int:
        done = 0
        # Only ended runs: a pending run's input is what recovery re-executes.
        holding = (
            Run.tenant_id == tenant_id,
            Run.ended_at.is_not(None),
            or_(Run.output.is_not(None), cast(Run.input, String) != "{}"),
        )
        if policy.payloads_days is not None:
            cutoff = self._now() - timedelta(days=policy.payloads_days)
            query = select(Run.id).where(*holding, Run.ended_at < cutoff).limit(self.batch)
            done += self._repeat(lambda session: _clear(session, query))
        if policy.payloads_max is not None:
            # The newest `payloads_max` ended runs keep theirs, whether or not already cleared.
            newest = (
                select(Run.id)
                .where(Run.tenant_id == tenant_id, Run.ended_at.is_not(None))
                .order_by(Run.ended_at.desc(), Run.id.desc())
                .limit(policy.payloads_max)
            )
            query = select(Run.id).where(*holding, Run.id.not_in(newest)).limit(self.batch)
            done += self._repeat(lambda session: _clear(session, query))
        return done

    # -- batching ------------------------------------------------------------------------------

    def _repeat(self, one_batch: Callable[[Session], int]) -> int:
        """Run `one_batch` in its own short transaction until it finds less than a batch."""
        total = 0
        while True:
            with self._db.session() as session:
                count = one_batch(session)
            total += count
            if count < self.batch:
                return total

    def _cutoff_ns(self, days: int) -> int:
        return int((self._now() - timedelta(days=days)).timestamp()) * 1_000_000_000


def _beyond_newest(tenant_id: str, keep: int, batch: int) -> Any:
    return (
        select(Span.span_id)
        .where(Span.tenant_id == tenant_id)
        .order_by(Span.start_ns.desc(), Span.span_id.desc())
        .offset(keep)
        .limit(batch)
    )


def _strip(session: Session, query: Any) -> int:
    rows = list(session.scalars(query))
    for row in rows:
        row.attributes = {k: v for k, v in row.attributes.items() if k not in CONTENT_KEYS}
    return len(rows)


def _clear(session: Session, query: Any) -> int:
    ids = list(session.scalars(query))
    if ids:
        session.execute(update(Run).where(Run.id.in_(ids)).values(input={}, output=null()))
    return len(ids)


def _policy(row: RetentionPolicyRow) -> RetentionPolicy:
    return RetentionPolicy(
        spans_days=row.spans_days,
        spans_max=row.spans_max,
        content_days=row.content_days,
        content_max=row.content_max,
        payloads_days=row.payloads_days,
        payloads_max=row.payloads_max,
    )
