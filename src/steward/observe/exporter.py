"""A span exporter that writes finished spans into Steward's own `spans` table.

It feeds the per-run trace API; a batch is one transaction and re-exported spans are ignored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite

from steward.observe.genai import STEWARD_RUN_ID, STEWARD_TENANT_ID
from steward.security.redaction import REDACTOR
from steward.store.database import Database
from steward.store.schema import Span as SpanRow

logger = logging.getLogger(__name__)


class DatabaseSpanExporter(SpanExporter):
    """Writes each exported batch as `Span` rows; never raises into the SDK."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            # Keyed by span id: a span repeated within a batch is written once.
            rows = {row["span_id"]: REDACTOR.scrub(row) for row in map(span_to_row, spans)}
            if rows:
                with self._db.session() as session:
                    session.execute(self._insert_ignoring_duplicates(), list(rows.values()))
        except Exception:
            logger.exception("could not write %d spans to the trace store", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """The database belongs to the caller, who disposes of it."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def _insert_ignoring_duplicates(self) -> Insert:
        table = SpanRow.metadata.tables[SpanRow.__tablename__]
        if self._db.engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=["span_id"])
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["span_id"])


def span_to_row(span: ReadableSpan) -> dict[str, Any]:
    """The `spans` row for one finished span, with every value JSON-safe."""
    context = span.get_span_context()
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    attributes = json_attributes(span.attributes)
    start_ns = span.start_time or 0
    return {
        "span_id": format(context.span_id, "016x"),
        "trace_id": format(context.trace_id, "032x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "tenant_id": _str_or_none(attributes.get(STEWARD_TENANT_ID)),
        "run_id": _str_or_none(attributes.get(STEWARD_RUN_ID)),
        "name": span.name,
        "kind": span.kind.name,
        "start_ns": start_ns,
        "end_ns": span.end_time or start_ns,
        "status_code": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": attributes,
        "events": {
            "events": [
                {
                    "name": event.name,
                    "time_ns": event.timestamp,
                    "attributes": json_attributes(event.attributes),
                }
                for event in span.events
            ]
        },
    }


def json_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in (attributes or {}).items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; PostgreSQL rejects them.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Sequence):
        return [_json_value(item) for item in value]
    return str(value)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
