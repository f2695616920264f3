"""Thread count and copy (LangGraph's `threads.count`, `threads.copy`), per tenant.

A copy is a new thread with the same metadata and values and a copy of every finished run, so
its history (the states its runs left) reads as the original's; runs still going, and their
pending approvals, stay with the original.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from steward.store.assistants import contains
from steward.store.database import Database
from steward.store.schema import Run, Thread, utcnow


def count_threads(
    db: Database,
    tenant_id: str,
    *,
    metadata: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    status: str | None = None,
) -> int:
    """How many threads `ThreadStore.search` would find with the same filters."""
    query = select(Thread).where(Thread.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Thread.status == status)
    with db.session() as session:
        if not metadata and not values:
            counted = select(func.count()).select_from(query.subquery())
            return int(session.scalar(counted) or 0)
        return sum(
            1
            for thread in session.scalars(query.execution_options(yield_per=500))
            if contains(thread.meta or {}, metadata) and contains(thread.values or {}, values)
        )


def copy_thread(db: Database, tenant_id: str, thread_id: str) -> Thread | None:
    now = utcnow()
    with db.session() as session:
        original = session.get(Thread, (tenant_id, thread_id))
        if original is None:
            return None
        copy = Thread(
            tenant_id=tenant_id,
            id=str(uuid.uuid4()),
            status="idle",
            meta=dict(original.meta or {}),
            values=dict(original.values or {}),
            created_at=now,
            updated_at=now,
        )
        session.add(copy)
        finished = session.scalars(
            select(Run).where(
                Run.tenant_id == tenant_id,
                Run.thread_id == thread_id,
                Run.ended_at.is_not(None),
            )
        )
        columns = [c.key for c in Run.__mapper__.column_attrs]
        for run in finished:
            fields = {name: getattr(run, name) for name in columns}
            fields.update(id=str(uuid.uuid4()), thread_id=copy.id, active=False, webhook=None)
            session.add(Run(**fields))
        return copy
