"""A span exporter wrapper that redacts secrets and personal data before spans leave the process.

It runs on the exporter's background thread, so the run's hot path pays nothing for it; every
string attribute, event attribute (exception messages included) and status message is redacted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from steward.policy.redact import Redactor


class RedactingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, redactor: Redactor | None = None) -> None:
        self.inner = inner
        self.redactor = redactor or Redactor()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self.redact_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def redact_span(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, self.redactor.redact(status.description))
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                Event(e.name, self._attributes(e.attributes), e.timestamp) for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in (attributes or {}).items():
            if key.endswith(".id"):  # identifiers Steward or a provider generated
                pass
            elif isinstance(value, str):
                value = self.redactor.redact(value)
            elif isinstance(value, tuple | list) and any(isinstance(v, str) for v in value):
                value = tuple(self.redactor.redact(v) if isinstance(v, str) else v for v in value)
            result[key] = value
        return result
