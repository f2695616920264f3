"""Reading a run's spans back from the trace store, for the trace API, CLI and dashboard.

Every query filters by tenant: a run id alone never reveals another tenant's spans.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from steward.store.database import Database
from steward.store.schema import Span as SpanRow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def list_run_spans(db: Database, tenant_id: str, run_id: str) -> list[dict[str, Any]]:
    """The spans of `run_id` owned by `tenant_id`, oldest first."""
    query = (
        select(SpanRow)
        .where(SpanRow.tenant_id == tenant_id, SpanRow.run_id == run_id)
        .order_by(SpanRow.start_ns, SpanRow.span_id)
    )
    with db.session() as session:
        return [_span_json(row) for row in session.scalars(query)]


def _span_json(row: SpanRow) -> dict[str, Any]:
    return {
        "span_id": row.span_id,
        "trace_id": row.trace_id,
        "parent_span_id": row.parent_span_id,
        "name": row.name,
        "kind": row.kind,
        "start_time": _iso(row.start_ns),
        "end_time": _iso(row.end_ns),
        "duration_ms": (row.end_ns - row.start_ns) / 1_000_000,
        "status": row.status_code,
        "status_message": row.status_message,
        "attributes": row.attributes,
        "events": row.events.get("events", []),
    }


def _iso(time_ns: int) -> str:
    # Integer arithmetic keeps microseconds exact, where a float timestamp would round.
    return (_EPOCH + timedelta(microseconds=time_ns // 1_000)).isoformat()
