"""Thread queries beyond create/get: search, metadata and state updates, deletion.

Every query filters by tenant (DESIGN invariant 7); deleting a thread takes its runs and
approvals with it, as LangGraph Platform does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from steward.store.database import Database
from steward.store.schema import Approval, Run, Thread, utcnow

THREAD_STATUSES = ("idle", "busy", "interrupted", "error")


class ThreadStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def search(
        self,
        tenant_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Thread]:
        """Threads newest first whose metadata and values contain the given pairs.

        JSON containment is checked here rather than in SQL so that SQLite and PostgreSQL
        agree exactly; the tenant, status and order filters run in the database.
        """
        query = select(Thread).where(Thread.tenant_id == tenant_id)
        if status is not None:
            query = query.where(Thread.status == status)
        query = query.order_by(Thread.created_at.desc(), Thread.id)
        found: list[Thread] = []
        skipped = 0
        with self.db.session() as session:
            for thread in session.scalars(query.execution_options(yield_per=500)):
                if not (_contains(thread.meta, metadata) and _contains(thread.values, values)):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(thread)
                if len(found) >= limit:
                    break
        return found

    def update_metadata(
        self, tenant_id: str, thread_id: str, metadata: dict[str, Any]
    ) -> Thread | None:
        with self.db.session() as session:
            thread = session.get(Thread, (tenant_id, thread_id))
            if thread is None:
                return None
            thread.meta = {**thread.meta, **metadata}
            thread.updated_at = utcnow()
            return thread

    def set_values(self, tenant_id: str, thread_id: str, values: dict[str, Any]) -> Thread | None:
        with self.db.session() as session:
            thread = session.get(Thread, (tenant_id, thread_id))
            if thread is None:
                return None
            thread.values = values
            thread.updated_at = utcnow()
            return thread

    def delete(self, tenant_id: str, thread_id: str) -> bool:
        with self.db.session() as session:
            thread = session.get(Thread, (tenant_id, thread_id))
            if thread is None:
                return False
            session.execute(
                delete(Approval).where(
                    Approval.tenant_id == tenant_id, Approval.thread_id == thread_id
                )
            )
            session.execute(
                delete(Run).where(Run.tenant_id == tenant_id, Run.thread_id == thread_id)
            )
            session.delete(thread)
            return True

    def history(self, tenant_id: str, thread_id: str, limit: int) -> list[Run]:
        """The thread's successful runs, newest first: each one's output was a state."""
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(Run)
                    .where(
                        Run.tenant_id == tenant_id,
                        Run.thread_id == thread_id,
                        Run.status == "success",
                    )
                    .order_by(Run.ended_at.desc())
                    .limit(limit)
                )
            )


def _contains(document: dict[str, Any] | None, wanted: dict[str, Any] | None) -> bool:
    if not wanted:
        return True
    document = document or {}
    return all(key in document and document[key] == value for key, value in wanted.items())
