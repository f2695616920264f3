"""The process's OpenTelemetry tracer: run-derived trace ids, run stamping and span export.

One `Tracing` per process (tests make several); it is never installed as the global provider.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from steward.observe.context import current_run_id, current_tenant_id
from steward.observe.exporter import DatabaseSpanExporter
from steward.observe.genai import STEWARD_RUN_ID, STEWARD_TENANT_ID
from steward.observe.sampling import SamplingPolicy, TailSamplingProcessor
from steward.observe.semconv import SemconvExporter, SemconvVersion, effective_version
from steward.observe.spans import GenAISpans
from steward.policy.trace_redaction import RedactingSpanExporter
from steward.store.database import Database

logger = logging.getLogger(__name__)


class RunTraceIdGenerator(RandomIdGenerator):
    """Root spans inside a run scope take the run's UUID as trace id.

    So every span of a run shares one trace, even those emitted by a worker after a restart.
    """

    def generate_trace_id(self) -> int:
        run_id = current_run_id()
        if run_id is not None:
            try:
                trace_id = uuid.UUID(run_id).int
            except ValueError:
                trace_id = 0
            if trace_id:
                return trace_id
        return super().generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False


class RunStampingProcessor(SpanProcessor):
    """Stamps `steward.run.id` and `steward.tenant.id` on every span as it starts."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        run_id = current_run_id()
        if run_id is not None:
            span.set_attribute(STEWARD_RUN_ID, run_id)
        tenant_id = current_tenant_id()
        if tenant_id is not None:
            span.set_attribute(STEWARD_TENANT_ID, tenant_id)


class Tracing(GenAISpans):
    """The tracer provider, its processors and exporters, and the GenAI span helpers."""

    tracer: trace.Tracer

    def __init__(
        self,
        db: Database | None,
        *,
        flush_interval_ms: int = 200,
        capture_content: bool = False,
        extra_exporters: Sequence[SpanExporter] = (),
        sampling: SamplingPolicy | None = None,
        genai_semconv: SemconvVersion = "latest",
    ) -> None:
        self.capture_content = capture_content
        self._provider: TracerProvider | None = TracerProvider(
            resource=_resource(), id_generator=RunTraceIdGenerator()
        )
        self._provider.add_span_processor(RunStampingProcessor())
        exporters = list(extra_exporters)
        if db is not None:
            exporters.insert(0, DatabaseSpanExporter(db))
        otlp = otlp_exporter_from_env()
        if otlp is not None:
            exporters.append(SemconvExporter(otlp, effective_version(genai_semconv)))
        # Secrets and personal data never enter a trace (DESIGN invariant 6).
        batches: list[SpanProcessor] = [
            BatchSpanProcessor(
                RedactingSpanExporter(exporter), schedule_delay_millis=flush_interval_ms
            )
            for exporter in exporters
        ]
        # One sampling decision in front of every exporter: the store and OTLP agree.
        self.sampler = TailSamplingProcessor(sampling or SamplingPolicy(), batches)
        self._provider.add_span_processor(self.sampler)
        self.tracer = self._provider.get_tracer("steward")

    @classmethod
    def disabled(cls) -> Tracing:
        """A `Tracing` whose spans are no-ops, for benchmarks of the bare engine."""
        tracing = cls.__new__(cls)
        tracing.capture_content = False
        tracing._provider = None
        tracing.sampler = TailSamplingProcessor(SamplingPolicy(), ())
        tracing.tracer = trace.NoOpTracer()
        return tracing

    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        """Export every finished span now; False if the exporters did not finish in time."""
        if self._provider is None:
            return True
        return self._provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Flush and stop the exporters; safe to call twice."""
        provider, self._provider = self._provider, None
        if provider is not None:
            provider.shutdown()
        self.tracer = trace.NoOpTracer()


def otlp_exporter_from_env() -> SpanExporter | None:
    """An OTLP/HTTP exporter when the standard endpoint variables ask for one."""
    if not (
        os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT)
    ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter,
        )
    except ImportError:
        logger.warning(
            "%s is set but opentelemetry-exporter-otlp-proto-http is not installed; "
            "spans go to Steward's trace store only",
            OTEL_EXPORTER_OTLP_ENDPOINT,
        )
        return None
    exporter: SpanExporter = OTLPSpanExporter()  # reads endpoint, headers and timeout from env
    return exporter


def _resource() -> Resource:
    resource = Resource.create()
    service = str(resource.attributes.get(SERVICE_NAME, ""))
    if service.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "steward"}))
    return resource
