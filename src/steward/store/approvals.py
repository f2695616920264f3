"""Approvals: tool calls a person must approve, edit or reject before the run goes on.

Requesting one pauses the run (status `interrupted`, stop reason `awaiting_approval`, thread
`interrupted`) in the same transaction; deciding is a compare-and-set on `pending`, so two
reviewers can never both decide, and the run is resumed by its own workflow, not by the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.store.database import Database
from steward.store.runs import AWAITING_APPROVAL
from steward.store.schema import Approval, Run, Thread, utcnow

DECISIONS = ("approved", "rejected")


@dataclass(frozen=True)
class ApprovalRequest:
    tenant_id: str
    run_id: str
    thread_id: str | None
    step: int
    tool: str
    call_id: str
    arguments: dict[str, Any]
    reason: str | None
    timeout_s: float

    @property
    def id(self) -> str:
        return f"{self.run_id}:{self.step}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ApprovalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def build(request: ApprovalRequest) -> Approval:
        """The pending approval as it will be stored (not yet saved)."""
        now = utcnow()
        return Approval(
            id=request.id,
            tenant_id=request.tenant_id,
            run_id=request.run_id,
            thread_id=request.thread_id,
            step=request.step,
            tool=request.tool,
            call_id=request.call_id,
            arguments=request.arguments,
            reason=request.reason,
            status="pending",
            created_at=now,
            expires_at=now + timedelta(seconds=request.timeout_s),
        )

    def request(self, approval: Approval) -> Approval:
        """Record the pending call and pause its run; idempotent for a replayed step."""
        now = approval.created_at
        try:
            with self.db.session() as session:
                session.add(approval)
                session.execute(
                    update(Run)
                    .where(Run.id == approval.run_id, Run.status == "running")
                    .values(status="interrupted", stop_reason=AWAITING_APPROVAL, updated_at=now)
                )
                if approval.thread_id is not None:
                    session.execute(
                        update(Thread)
                        .where(
                            Thread.tenant_id == approval.tenant_id,
                            Thread.id == approval.thread_id,
                        )
                        .values(status="interrupted", updated_at=now)
                    )
        except IntegrityError:
            existing = self.get(approval.tenant_id, approval.id)
            if existing is None:  # pragma: no cover - the conflicting row cannot vanish
                raise
            return existing
        return approval

    def set_stream_after(self, tenant_id: str, approval_id: str, event_id: str) -> None:
        """Where a stream that follows the run after this approval starts (its pause marker)."""
        with self.db.session() as session:
            session.execute(
                update(Approval)
                .where(Approval.tenant_id == tenant_id, Approval.id == approval_id)
                .values(stream_after=event_id)
            )

    def get(self, tenant_id: str, approval_id: str) -> Approval | None:
        with self.db.session() as session:
            return session.scalar(
                select(Approval).where(Approval.tenant_id == tenant_id, Approval.id == approval_id)
            )

    def for_run(self, tenant_id: str, run_id: str, *, pending_only: bool = False) -> list[Approval]:
        query = select(Approval).where(Approval.tenant_id == tenant_id, Approval.run_id == run_id)
        if pending_only:
            query = query.where(Approval.status == "pending")
        with self.db.session() as session:
            return list(session.scalars(query.order_by(Approval.step)))

    def waits(self, tenant_id: str, run_id: str) -> dict[str, float]:
        """Seconds each of the run's approvals has kept it waiting so far, by approval id."""
        now = utcnow()
        return {
            approval.id: max(
                0.0,
                (_aware(approval.decided_at or now) - _aware(approval.created_at)).total_seconds(),
            )
            for approval in self.for_run(tenant_id, run_id)
        }

    def pending_on_thread(self, tenant_id: str, thread_id: str) -> list[Approval]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(Approval)
                    .where(
                        Approval.tenant_id == tenant_id,
                        Approval.thread_id == thread_id,
                        Approval.status == "pending",
                    )
                    .order_by(Approval.created_at)
                )
            )

    def decide(
        self,
        tenant_id: str,
        approval_id: str,
        *,
        status: str,
        arguments: dict[str, Any] | None,
        comment: str | None,
        decided_by: str | None,
    ) -> Approval | None:
        """Decide a pending approval; None when it was already decided (or never existed).

        The run is marked running again in the same transaction, so a client that joins it
        right after deciding waits for the outcome instead of seeing the old pause.
        """
        with self.db.session() as session:
            decided = session.execute(
                update(Approval)
                .where(
                    Approval.tenant_id == tenant_id,
                    Approval.id == approval_id,
                    Approval.status == "pending",
                )
                .values(
                    status=status,
                    decided_arguments=arguments,
                    comment=comment,
                    decided_by=decided_by,
                    decided_at=utcnow(),
                )
            )
            if decided.rowcount != 1:  # type: ignore[attr-defined]
                return None
            approval = session.get(Approval, approval_id)
            if approval is not None:
                _resume(session, approval.run_id)
        return self.get(tenant_id, approval_id)

    def settle(self, tenant_id: str, approval_id: str) -> Approval | None:
        """The run's own view: the decision if made, or `expired` once past its deadline."""
        approval = self.get(tenant_id, approval_id)
        if approval is None or approval.status != "pending":
            return approval
        if _aware(approval.expires_at) > utcnow():
            return approval
        return self.decide(
            tenant_id,
            approval_id,
            status="expired",
            arguments=None,
            comment="no decision before the approval deadline",
            decided_by=None,
        ) or self.get(tenant_id, approval_id)

    def resume_run(self, run_id: str) -> None:
        """Mark a paused run as running again (idempotent; its workflow calls it on resuming)."""
        with self.db.session() as session:
            _resume(session, run_id)


def _resume(session: Session, run_id: str) -> None:
    now = utcnow()
    run = session.get(Run, run_id)
    if run is None or run.stop_reason != AWAITING_APPROVAL or run.status != "interrupted":
        return
    run.status = "running"
    run.stop_reason = None
    run.updated_at = now
    if run.thread_id is not None:
        session.execute(
            update(Thread)
            .where(Thread.tenant_id == run.tenant_id, Thread.id == run.thread_id)
            .values(status="busy", updated_at=now)
        )
