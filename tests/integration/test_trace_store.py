"""Spans travel through the real batch processor into SQLite and back out per run and tenant."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from steward.models.types import Message, ModelRequest, ModelResponse, Usage
from steward.observe.context import run_scope
from steward.observe.exporter import DatabaseSpanExporter
from steward.observe.trace_store import list_run_spans
from steward.observe.tracing import Tracing
from steward.store.database import Database
from steward.store.migrate import upgrade

REQUEST = ModelRequest(model="gpt-4.1-mini", messages=(Message(role="user", content="hi"),))
RESPONSE = ModelResponse(
    provider="openai",
    model="gpt-4.1-mini",
    id="chatcmpl-1",
    content="hello",
    tool_calls=(),
    finish_reason="stop",
    provider_finish_reason="stop",
    usage=Usage(input_tokens=12, output_tokens=3, cache_read_tokens=8),
)


@pytest.fixture(autouse=True)
def _no_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'steward.db'}"
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def tracing(db: Database) -> Iterator[Tracing]:
    tracing = Tracing(db, flush_interval_ms=50)
    yield tracing
    tracing.shutdown()


def emit_run(tracing: Tracing, run_id: str, tenant_id: str) -> None:
    with run_scope(run_id, tenant_id), tracing.invoke_agent("researcher", conversation_id="t-1"):
        with tracing.chat("openai", REQUEST) as recorder:
            recorder.record(RESPONSE, cost_usd=0.002, cost_known=True)
        with (
            pytest.raises(RuntimeError),
            tracing.execute_tool("weather", "call_1", step=2),
        ):
            raise RuntimeError("weather service down")


def test_a_runs_spans_come_back_in_order_with_their_tree_and_attributes(
    db: Database, tracing: Tracing
) -> None:
    run_id = str(uuid.uuid4())
    emit_run(tracing, run_id, "tenant-a")
    assert tracing.force_flush(5_000)

    spans = list_run_spans(db, "tenant-a", run_id)

    assert [span["name"] for span in spans] == [
        "invoke_agent researcher",
        "chat gpt-4.1-mini",
        "execute_tool weather",
    ]
    agent, chat, tool = spans
    assert {span["trace_id"] for span in spans} == {uuid.UUID(run_id).hex}
    assert agent["parent_span_id"] is None
    assert chat["parent_span_id"] == tool["parent_span_id"] == agent["span_id"]
    assert (agent["kind"], chat["kind"], tool["kind"]) == ("INTERNAL", "CLIENT", "INTERNAL")
    assert chat["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 8
    assert chat["attributes"]["steward.run.id"] == run_id
    assert chat["attributes"]["steward.tenant.id"] == "tenant-a"
    assert "gen_ai.usage.input_tokens" not in agent["attributes"]
    assert (agent["status"], tool["status"]) == ("UNSET", "ERROR")
    assert tool["status_message"] == "weather service down"
    assert tool["attributes"]["error.type"] == "RuntimeError"
    assert [event["name"] for event in tool["events"]] == ["exception"]
    for span in spans:
        start = datetime.fromisoformat(span["start_time"])
        end = datetime.fromisoformat(span["end_time"])
        assert start.tzinfo is not None
        assert start <= end
        assert span["duration_ms"] >= 0


def test_another_tenant_sees_none_of_the_runs_spans(db: Database, tracing: Tracing) -> None:
    run_id = str(uuid.uuid4())
    emit_run(tracing, run_id, "tenant-a")
    assert tracing.force_flush(5_000)

    assert len(list_run_spans(db, "tenant-a", run_id)) == 3
    assert list_run_spans(db, "tenant-b", run_id) == []


def test_runs_of_one_tenant_stay_apart(db: Database, tracing: Tracing) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    emit_run(tracing, first, "tenant-a")
    emit_run(tracing, second, "tenant-a")
    assert tracing.force_flush(5_000)

    assert {span["trace_id"] for span in list_run_spans(db, "tenant-a", first)} == {
        uuid.UUID(first).hex
    }
    assert len(list_run_spans(db, "tenant-a", second)) == 3


def recorded_spans() -> tuple[ReadableSpan, ...]:
    memory = InMemorySpanExporter()
    tracing = Tracing(None, extra_exporters=[memory])
    with run_scope("run-1", "tenant-a"), tracing.execute_tool("t", "c", step=1) as span:
        span.set_attribute("tags", ("a", "b"))
    tracing.shutdown()
    return memory.get_finished_spans()


def test_exporting_the_same_spans_twice_stores_them_once(db: Database) -> None:
    spans = recorded_spans()
    exporter = DatabaseSpanExporter(db)

    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans + spans) is SpanExportResult.SUCCESS

    (stored,) = list_run_spans(db, "tenant-a", "run-1")
    assert stored["attributes"]["tags"] == ["a", "b"]


def test_a_failing_store_is_logged_and_reported_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unmigrated = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with caplog.at_level(logging.ERROR, logger="steward.observe.exporter"):
            result = DatabaseSpanExporter(unmigrated).export(recorded_spans())
    finally:
        unmigrated.dispose()

    assert result is SpanExportResult.FAILURE
    assert "could not write 1 spans" in caplog.text
