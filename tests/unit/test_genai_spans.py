"""The GenAI span helpers emit the convention names and values, and tie every span to its run."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from steward.models.types import Message, ModelRequest, ModelResponse, ToolCall, Usage
from steward.observe.context import current_run_id, current_tenant_id, run_scope
from steward.observe.tracing import Tracing, otlp_exporter_from_env

OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

REQUEST = ModelRequest(
    model="gpt-4.1-mini",
    messages=(
        Message(role="system", content="Be brief."),
        Message(role="user", content="Weather in Paris?"),
        Message(
            role="assistant",
            tool_calls=(ToolCall("call_1", "weather", {"city": "Paris"}),),
        ),
        Message(role="tool", content="18°C", tool_call_id="call_1", name="weather"),
    ),
    max_tokens=256,
    temperature=0.2,
)

RESPONSE = ModelResponse(
    provider="openai",
    model="gpt-4.1-mini-2025-04-14",
    id="chatcmpl-42",
    content="It is 18°C in Paris.",
    tool_calls=(),
    finish_reason="stop",
    provider_finish_reason="stop",
    usage=Usage(
        input_tokens=120,
        output_tokens=9,
        cache_read_tokens=100,
        cache_write_tokens=4,
        reasoning_tokens=2,
    ),
    time_to_first_chunk_s=0.25,
)


@pytest.fixture(autouse=True)
def _no_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTLP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def memory() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(memory: InMemorySpanExporter) -> Iterator[Tracing]:
    tracing = Tracing(None, extra_exporters=[memory])
    yield tracing
    tracing.shutdown()


@pytest.fixture
def content_tracing(memory: InMemorySpanExporter) -> Iterator[Tracing]:
    tracing = Tracing(None, capture_content=True, extra_exporters=[memory])
    yield tracing
    tracing.shutdown()


def finished(tracing: Tracing, memory: InMemorySpanExporter) -> list[ReadableSpan]:
    assert tracing.force_flush(5_000)
    return list(memory.get_finished_spans())


def only_span(tracing: Tracing, memory: InMemorySpanExporter) -> ReadableSpan:
    (span,) = finished(tracing, memory)
    return span


def test_invoke_agent_span_names_the_agent_and_carries_no_usage(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with tracing.invoke_agent("researcher", conversation_id="thread-7"):
        pass

    span = only_span(tracing, memory)
    assert span.name == "invoke_agent researcher"
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "researcher",
        "gen_ai.conversation.id": "thread-7",
    }


def test_invoke_agent_without_conversation_leaves_the_attribute_out(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with tracing.invoke_agent("researcher", conversation_id=None):
        pass

    assert "gen_ai.conversation.id" not in (only_span(tracing, memory).attributes or {})


def test_chat_span_records_request_response_usage_and_cost(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with tracing.chat("openai", REQUEST) as recorder:
        recorder.record(RESPONSE, cost_usd=0.00123, cost_known=True)

    span = only_span(tracing, memory)
    assert span.name == "chat gpt-4.1-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4.1-mini",
        "gen_ai.request.max_tokens": 256,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.model": "gpt-4.1-mini-2025-04-14",
        "gen_ai.response.id": "chatcmpl-42",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 9,
        "gen_ai.usage.cache_read.input_tokens": 100,
        "gen_ai.usage.cache_creation.input_tokens": 4,
        "gen_ai.usage.reasoning.output_tokens": 2,
        "gen_ai.response.time_to_first_chunk": 0.25,
        "gen_ai.usage.cost": 0.00123,
        "steward.usage.cost_estimated": False,
    }


def test_chat_finish_reasons_keep_the_providers_raw_value(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    response = ModelResponse(
        provider="anthropic",
        model="claude-sonnet-4-5",
        id="msg_1",
        content="",
        tool_calls=(ToolCall("toolu_1", "weather", {}),),
        finish_reason="tool_calls",
        provider_finish_reason="tool_use",
        usage=Usage(input_tokens=10, output_tokens=3),
    )
    with tracing.chat("anthropic", ModelRequest(model="claude-sonnet-4-5", messages=())) as rec:
        rec.record(response, cost_usd=0.5, cost_known=False)

    attributes = only_span(tracing, memory).attributes or {}
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert attributes["steward.usage.cost_estimated"] is True


def test_chat_omits_what_it_does_not_know(tracing: Tracing, memory: InMemorySpanExporter) -> None:
    request = ModelRequest(model="local", messages=(Message(role="user", content="hi"),))
    response = ModelResponse(
        provider="steward.local",
        model="local",
        id="r1",
        content="hello",
        tool_calls=(),
        finish_reason="stop",
        provider_finish_reason="stop",
        usage=Usage(input_tokens=1, output_tokens=1),
    )
    with tracing.chat("steward.local", request) as recorder:
        recorder.record(response, cost_usd=None, cost_known=False)

    attributes = only_span(tracing, memory).attributes or {}
    for absent in (
        "gen_ai.request.max_tokens",
        "gen_ai.request.temperature",
        "gen_ai.response.time_to_first_chunk",
        "gen_ai.usage.cost",
        "steward.usage.cost_estimated",
    ):
        assert absent not in attributes


def test_message_content_is_not_captured_by_default(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with tracing.chat("openai", REQUEST) as recorder:
        recorder.record(RESPONSE, cost_usd=None, cost_known=False)

    attributes = only_span(tracing, memory).attributes or {}
    assert "gen_ai.input.messages" not in attributes
    assert "gen_ai.output.messages" not in attributes


def test_message_content_is_captured_as_convention_json_when_enabled(
    content_tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with content_tracing.chat("openai", REQUEST) as recorder:
        recorder.record(RESPONSE, cost_usd=None, cost_known=False)

    attributes = only_span(content_tracing, memory).attributes or {}
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18°C"}],
            "name": "weather",
        },
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It is 18°C in Paris."}],
            "finish_reason": "stop",
        }
    ]


def test_input_messages_survive_a_failed_model_call(
    content_tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with pytest.raises(TimeoutError), content_tracing.chat("openai", REQUEST):
        raise TimeoutError("upstream timed out")

    attributes = only_span(content_tracing, memory).attributes or {}
    assert "gen_ai.input.messages" in attributes
    assert "gen_ai.output.messages" not in attributes


def test_execute_tool_span_names_the_tool_call_and_step(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with tracing.execute_tool("weather", "call_1", step=3):
        pass

    span = only_span(tracing, memory)
    assert span.name == "execute_tool weather"
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "weather",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "function",
        "steward.step": 3,
    }


class ToolBroke(Exception):
    pass


def helpers(tracing: Tracing) -> dict[str, AbstractContextManager[Any]]:
    return {
        "invoke_agent": tracing.invoke_agent("researcher", conversation_id=None),
        "chat": tracing.chat("openai", REQUEST),
        "execute_tool": tracing.execute_tool("weather", "call_1", step=1),
    }


@pytest.mark.parametrize("helper", ["invoke_agent", "chat", "execute_tool"])
def test_an_exception_marks_the_span_as_an_error_and_propagates(
    tracing: Tracing, memory: InMemorySpanExporter, helper: str
) -> None:
    with pytest.raises(ToolBroke, match="disk full"), helpers(tracing)[helper]:
        raise ToolBroke("disk full")

    span = only_span(tracing, memory)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "disk full"
    assert (span.attributes or {})["error.type"] == "ToolBroke"
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.message"] == "disk full"


def test_every_span_of_a_run_shares_the_trace_id_derived_from_the_run_id(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    run_id = str(uuid.uuid4())
    with run_scope(run_id, "tenant-a"):
        with tracing.invoke_agent("researcher", conversation_id=None):
            with tracing.chat("openai", REQUEST) as recorder:
                recorder.record(RESPONSE, cost_usd=None, cost_known=False)
            with tracing.execute_tool("weather", "call_1", step=2):
                pass
        # A second root span of the same run, as a resumed run emits after a crash.
        with tracing.execute_tool("weather", "call_2", step=3):
            pass

    spans = finished(tracing, memory)
    assert len(spans) == 4
    assert {span.context.trace_id for span in spans if span.context} == {uuid.UUID(run_id).int}


def test_a_restarted_process_continues_the_runs_trace() -> None:
    run_id = str(uuid.uuid4())
    trace_ids = []
    for _ in range(2):  # one Tracing per process lifetime, before and after the crash
        memory = InMemorySpanExporter()
        tracing = Tracing(None, extra_exporters=[memory])
        with run_scope(run_id, "tenant-a"), tracing.invoke_agent("a", conversation_id=None):
            pass
        tracing.shutdown()
        trace_ids += [span.context.trace_id for span in memory.get_finished_spans() if span.context]

    assert trace_ids == [uuid.UUID(run_id).int] * 2


def test_a_non_uuid_run_id_gets_a_random_trace_id(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    for _ in range(2):
        with (
            run_scope("run-not-a-uuid", "tenant-a"),
            tracing.invoke_agent("a", conversation_id=None),
        ):
            pass

    trace_ids = {span.context.trace_id for span in finished(tracing, memory) if span.context}
    assert len(trace_ids) == 2


def test_run_and_tenant_are_stamped_on_every_span_started_in_the_scope(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    with run_scope("run-1", "tenant-a"), tracing.invoke_agent("a", conversation_id=None):
        with tracing.execute_tool("weather", "call_1", step=1):
            pass
        with tracing.tracer.start_as_current_span("plain"):
            pass
    with tracing.invoke_agent("outside", conversation_id=None):
        pass

    stamps = {
        span.name: (
            (span.attributes or {}).get("steward.run.id"),
            (span.attributes or {}).get("steward.tenant.id"),
        )
        for span in finished(tracing, memory)
    }
    assert stamps == {
        "invoke_agent a": ("run-1", "tenant-a"),
        "execute_tool weather": ("run-1", "tenant-a"),
        "plain": ("run-1", "tenant-a"),
        "invoke_agent outside": (None, None),
    }


async def test_concurrent_runs_keep_their_own_traces(
    tracing: Tracing, memory: InMemorySpanExporter
) -> None:
    run_ids = [str(uuid.uuid4()) for _ in range(3)]

    async def run(run_id: str) -> None:
        with run_scope(run_id, "tenant-a"), tracing.invoke_agent("a", conversation_id=None):
            await asyncio.sleep(0)
            with tracing.execute_tool("t", "c", step=1):
                await asyncio.sleep(0)

    await asyncio.gather(*(run(run_id) for run_id in run_ids))

    spans = finished(tracing, memory)
    assert len(spans) == 6
    for span in spans:
        run_id = str((span.attributes or {})["steward.run.id"])
        assert span.context is not None
        assert span.context.trace_id == uuid.UUID(run_id).int


def test_run_scope_restores_the_outer_run() -> None:
    assert (current_run_id(), current_tenant_id()) == (None, None)
    with run_scope("outer", "tenant-a"):
        with run_scope("inner", "tenant-b"):
            assert (current_run_id(), current_tenant_id()) == ("inner", "tenant-b")
        assert (current_run_id(), current_tenant_id()) == ("outer", "tenant-a")
    assert (current_run_id(), current_tenant_id()) == (None, None)


def test_disabled_tracing_runs_the_helpers_and_records_nothing() -> None:
    tracing = Tracing.disabled()
    with tracing.invoke_agent("a", conversation_id=None) as span:
        with tracing.chat("openai", REQUEST) as recorder:
            recorder.record(RESPONSE, cost_usd=0.1, cost_known=True)
        assert not span.is_recording()
    assert tracing.force_flush(100)
    tracing.shutdown()


def test_no_otlp_exporter_without_an_endpoint() -> None:
    assert otlp_exporter_from_env() is None


def test_an_otlp_endpoint_adds_the_otlp_http_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    module = pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/")
    exporter = otlp_exporter_from_env()
    assert isinstance(exporter, module.OTLPSpanExporter)
    exporter.shutdown()
