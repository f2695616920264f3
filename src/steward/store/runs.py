"""Queries over runs and threads; every one filters by tenant (DESIGN invariant 7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from steward.store.database import Database
from steward.store.schema import Run, Thread, utcnow

ACTIVE = ("pending", "running")
AWAITING_APPROVAL = "awaiting_approval"  # stop_reason of a run paused at a tool call


def is_open(run: Run) -> bool:
    """Whether the run can still do work: queued, pending, running or paused for approval."""
    return run.status in ACTIVE or (
        run.status == "interrupted" and run.stop_reason == AWAITING_APPROVAL
    )


class ThreadBusy(Exception):
    """The thread already has a pending or running run."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} has an active run")
        self.thread_id = thread_id


@dataclass
class RunTotals:
    """What a run consumed; rebuilt on resume from the journaled step results."""

    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class RunStart:
    """What a worker needs to begin executing a run, read in one transaction."""

    run: Run
    thread_values: dict[str, Any]
    first: bool  # never started before: no journal, no approvals to credit
    # The thread's values could not be decoded (a row an older version wrote, say): the run
    # is marked running all the same, so the engine can end it in error and free the thread.
    thread_unreadable: ValueError | None = None


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_thread(self, tenant_id: str, thread_id: str, metadata: dict[str, Any]) -> Thread:
        thread = Thread(id=thread_id, tenant_id=tenant_id, meta=metadata, values={})
        with self.db.session() as session:
            session.add(thread)
        return thread

    def get_thread(self, tenant_id: str, thread_id: str) -> Thread | None:
        with self.db.session() as session:
            return session.scalar(
                select(Thread).where(Thread.tenant_id == tenant_id, Thread.id == thread_id)
            )

    def create_run(self, run: Run, *, new_thread: dict[str, Any] | None = None) -> Run:
        """Insert a pending run; an active one raises `ThreadBusy` if its thread is held.

        With `new_thread` (its metadata), the run's thread is created in the same transaction.
        """
        try:
            return self._insert_run(run, new_thread)
        except IntegrityError as exc:
            if new_thread is not None:
                raise  # a fresh thread cannot be busy: this is another conflict
            raise ThreadBusy(run.thread_id or "") from exc

    def _insert_run(self, run: Run, new_thread: dict[str, Any] | None) -> Run:
        with self.db.session() as session:
            if new_thread is not None:
                status = "busy" if run.active else "idle"
                session.add(
                    Thread(
                        id=run.thread_id,
                        tenant_id=run.tenant_id,
                        status=status,
                        meta=new_thread,
                        values={},
                    )
                )
            session.add(run)
            if run.active and new_thread is None:
                session.execute(
                    update(Thread)
                    .where(Thread.tenant_id == run.tenant_id, Thread.id == run.thread_id)
                    .values(status="busy", updated_at=utcnow())
                )
        return run

    def promote_next(self, tenant_id: str, thread_id: str) -> Run | None:
        """Hand a free thread to its oldest queued run; None if it is held or nothing waits.

        Called by whoever frees a thread and by whoever queues on one, so a run queued while
        the thread was being freed is never stranded; the unique index lets only one win.
        """
        try:
            with self.db.session() as session:
                queued = session.scalar(
                    select(Run.id)
                    .where(
                        Run.tenant_id == tenant_id,
                        Run.thread_id == thread_id,
                        Run.status == "pending",
                        Run.active.is_(False),
                    )
                    .limit(1)
                )
                if queued is None:
                    return None  # the usual case: nothing waits, one read and done
                held = session.scalar(
                    select(Run.id).where(
                        Run.tenant_id == tenant_id, Run.thread_id == thread_id, Run.active
                    )
                )
                if held is not None:
                    return None
                run = session.scalar(
                    select(Run)
                    .where(
                        Run.tenant_id == tenant_id,
                        Run.thread_id == thread_id,
                        Run.status == "pending",
                        Run.active.is_(False),
                    )
                    .order_by(Run.created_at, Run.id)
                    .limit(1)
                )
                if run is None:
                    return None
                run.active = True
                run.updated_at = utcnow()
                session.execute(
                    update(Thread)
                    .where(Thread.tenant_id == tenant_id, Thread.id == thread_id)
                    .values(status="busy", updated_at=utcnow())
                )
                return run
        except IntegrityError:
            return None

    def delete_run(self, tenant_id: str, run_id: str) -> bool:
        with self.db.session() as session:
            run = session.scalar(select(Run).where(Run.tenant_id == tenant_id, Run.id == run_id))
            if run is None:
                return False
            session.delete(run)
            return True

    def get_run(self, tenant_id: str, run_id: str, thread_id: str | None = None) -> Run | None:
        query = select(Run).where(Run.tenant_id == tenant_id, Run.id == run_id)
        if thread_id is not None:
            query = query.where(Run.thread_id == thread_id)
        with self.db.session() as session:
            return session.scalar(query)

    def active_run_on_thread(self, tenant_id: str, thread_id: str) -> Run | None:
        with self.db.session() as session:
            return session.scalar(
                select(Run)
                .where(Run.tenant_id == tenant_id, Run.thread_id == thread_id, Run.active)
                .limit(1)
            )

    def list_runs(
        self,
        tenant_id: str,
        *,
        thread_id: str | None = None,
        status: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Run]:
        query = select(Run).where(Run.tenant_id == tenant_id)
        if thread_id is not None:
            query = query.where(Run.thread_id == thread_id)
        if status is not None:
            query = query.where(Run.status == status)
        query = query.order_by(Run.created_at.desc()).limit(limit).offset(offset)
        with self.db.session() as session:
            return list(session.scalars(query))

    def mark_running(self, run_id: str, started_at: datetime) -> Run | None:
        """Move a pending run to running, keeping the first start time across recoveries."""
        started = self.begin_run(run_id, started_at)
        return None if started is None else started.run

    def begin_run(self, run_id: str, started_at: datetime) -> RunStart | None:
        """`mark_running` and the thread's values, read in the same transaction."""
        with self.db.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                return None
            if run.status == "pending":
                run.status = "running"
            first = run.started_at is None
            if first:
                run.started_at = started_at
            run.updated_at = utcnow()
            values: dict[str, Any] | None = None
            if run.thread_id is not None:
                try:
                    values = session.scalar(
                        select(Thread.values).where(
                            Thread.tenant_id == run.tenant_id, Thread.id == run.thread_id
                        )
                    )
                except ValueError as exc:
                    return RunStart(run, {}, first, thread_unreadable=exc)
            return RunStart(run, dict(values or {}), first)

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        stop_reason: str,
        output: dict[str, Any] | None,
        error: dict[str, Any] | None,
        totals: RunTotals,
    ) -> None:
        """Write the terminal state; idempotent, so a replay after a crash writes the same.

        Two UPDATEs in one transaction: the run's, only while it is open (a cancel may already
        have decided its fate), and its thread's, only when the run's did.
        """
        now = utcnow()
        still_open = (Run.status.in_(ACTIVE)) | (
            (Run.status == "interrupted") & (Run.stop_reason == AWAITING_APPROVAL)
        )
        with self.db.engine.begin() as conn:
            finished = conn.execute(
                update(Run)
                .where(Run.id == run_id, still_open)
                .values(
                    active=False,
                    status=status,
                    stop_reason=stop_reason,
                    output=output,
                    error=error,
                    steps=totals.steps,
                    input_tokens=totals.input_tokens,
                    output_tokens=totals.output_tokens,
                    cache_read_tokens=totals.cache_read_tokens,
                    cost_usd=totals.cost_usd,
                    ended_at=now,
                    updated_at=now,
                )
                .returning(Run.tenant_id, Run.thread_id)
            ).first()
            if finished is None or finished.thread_id is None:
                return
            thread_status = (
                "idle"
                if status == "success"
                else ("interrupted" if status == "interrupted" else "error")
            )
            changes: dict[str, Any] = {"status": thread_status, "updated_at": now}
            if output is not None:
                changes["values"] = output
            conn.execute(
                update(Thread)
                .where(Thread.tenant_id == finished.tenant_id, Thread.id == finished.thread_id)
                .values(**changes)
            )

    def mark_cancelled(self, tenant_id: str, run_id: str) -> bool:
        """Record a cancel of an active run; False when the run had already ended."""
        now = utcnow()
        with self.db.session() as session:
            run = session.scalar(
                select(Run).where(Run.tenant_id == tenant_id, Run.id == run_id).with_for_update()
            )
            if run is None or not is_open(run):
                return False
            held = run.active
            run.active = False
            run.status = "interrupted"
            run.stop_reason = "cancelled"
            run.ended_at = now
            run.updated_at = now
            if run.thread_id is not None and held:
                session.execute(
                    update(Thread)
                    .where(Thread.tenant_id == tenant_id, Thread.id == run.thread_id)
                    .values(status="interrupted", updated_at=now)
                )
            return True

    def pending_runs(self) -> list[Run]:
        """Runs holding their thread but not finished, across tenants: recovery's input."""
        with self.db.session() as session:
            return list(session.scalars(select(Run).where(Run.status.in_(ACTIVE), Run.active)))

    def thread_values(self, tenant_id: str, thread_id: str | None) -> dict[str, Any]:
        if thread_id is None:
            return {}
        with self.db.session() as session:
            values = session.scalar(
                select(Thread.values).where(Thread.tenant_id == tenant_id, Thread.id == thread_id)
            )
        return dict(values or {})
