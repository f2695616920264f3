"""Which version of the GenAI semantic conventions the OTLP export speaks.

Steward's spans carry the latest names (v1.41, see genai.py) and its own trace store keeps
them. Backends built against the conventions before v1.37 look for `gen_ai.system` and
`gen_ai.prompt`/`gen_ai.completion` instead: `genai_semconv = "1.36"` renames those on the way
out. `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`, the variable OpenTelemetry's
own GenAI instrumentations read, always selects the latest names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final, Literal

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from steward.observe import genai

SemconvVersion = Literal["latest", "1.36"]
OPT_IN_VARIABLE: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_OPT_IN: Final = "gen_ai_latest_experimental"

# v1.41 name -> the name the conventions used up to v1.36.
LEGACY_NAMES: Final = {
    genai.GEN_AI_PROVIDER_NAME: "gen_ai.system",
    genai.GEN_AI_INPUT_MESSAGES: "gen_ai.prompt",
    genai.GEN_AI_OUTPUT_MESSAGES: "gen_ai.completion",
}


def effective_version(setting: SemconvVersion) -> SemconvVersion:
    """The setting, unless the standard opt-in variable asks for the latest conventions."""
    opted = {part.strip() for part in os.environ.get(OPT_IN_VARIABLE, "").split(",")}
    return "latest" if LATEST_OPT_IN in opted else setting


class SemconvExporter(SpanExporter):
    """Renames GenAI attributes to an older convention version before `inner` exports."""

    def __init__(self, inner: SpanExporter, version: SemconvVersion) -> None:
        self._inner = inner
        self.version = version

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.version == "latest":
            return self._inner.export(spans)
        return self._inner.export([legacy_span(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def legacy_span(span: ReadableSpan) -> ReadableSpan:
    attributes = {
        LEGACY_NAMES.get(key, key): value for key, value in (span.attributes or {}).items()
    }
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
