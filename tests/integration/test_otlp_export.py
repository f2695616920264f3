"""Export shown working: a real server exports over OTLP/HTTP, configured only by the standard
`OTEL_EXPORTER_OTLP_*` variables, to a local receiver that decodes the real protobuf."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from steward.models.types import Message, ModelRequest, ModelResponse, Usage
from steward.observe.context import run_scope
from steward.observe.otlp_receiver import OTLPReceiver, ReceivedSpan
from steward.observe.semconv import SemconvVersion
from steward.observe.tracing import Tracing
from tests.conftest import StewardProcess, make_process

# What Langfuse asks for: its OTLP endpoint with `Authorization: Basic base64(public:secret)`.
LANGFUSE_AUTH = base64.b64encode(b"pk-lf-test:sk-lf-test").decode()
SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture
def exporting_server(tmp_path: Path, receiver: OTLPReceiver) -> Iterator[StewardProcess]:
    process = make_process(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Basic%20{LANGFUSE_AUTH}",
        OTEL_SERVICE_NAME="steward-export-test",
        STEWARD_CAPTURE_MESSAGE_CONTENT="true",
    )
    process.start()
    yield process
    process.stop()


def wait_for_spans(receiver: OTLPReceiver, trace_id: str, count: int) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = [span for span in receiver.spans() if span.trace_id == trace_id]
        if len(spans) >= count:
            return spans
        time.sleep(0.05)
    raise AssertionError(f"only {len(receiver.spans())} spans arrived: {receiver.spans()}")


def test_a_support_run_arrives_as_a_genai_span_tree(
    exporting_server: StewardProcess, receiver: OTLPReceiver
) -> None:
    key = exporting_server.create_key("export")
    with httpx.Client(
        base_url=exporting_server.url, headers={"x-api-key": key}, timeout=60
    ) as http:
        answer = http.post(
            "/runs/wait",
            json={"assistant_id": "support", "input": {"message": "Where is my order 42?"}},
        )
        assert answer.status_code == 200, answer.text
        run_id = answer.headers["content-location"].rsplit("/", 1)[-1]
        spans = wait_for_spans(receiver, uuid.UUID(run_id).hex, 4)
        deadline = time.monotonic() + 30
        stored: list[dict[str, object]] = []
        while len(stored) < len(spans) and time.monotonic() < deadline:
            stored = http.get(f"/runs/{run_id}/trace").json()["spans"]
            time.sleep(0.05)

    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert set(by_name) == {"invoke_agent support", "chat dev", "execute_tool lookup_order"}
    (agent,) = by_name["invoke_agent support"]
    chats = by_name["chat dev"]
    (tool,) = by_name["execute_tool lookup_order"]
    assert len(chats) == 2

    assert agent.parent_span_id is None and agent.kind == SPAN_KIND_INTERNAL
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.agent.name"] == "support"
    assert agent.attributes["steward.run.id"] == run_id
    assert "gen_ai.usage.input_tokens" not in agent.attributes  # Langfuse would double-count
    for chat in chats:
        assert chat.parent_span_id == agent.span_id and chat.kind == SPAN_KIND_CLIENT
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == "dev"
        assert chat.attributes["gen_ai.provider.name"]
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0
        assert isinstance(chat.attributes["gen_ai.response.finish_reasons"], list)
        assert '"role": "user"' in chat.attributes["gen_ai.input.messages"]
    assert tool.parent_span_id == agent.span_id
    assert tool.attributes["gen_ai.tool.name"] == "lookup_order"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert all(span.end_ns >= span.start_ns > 0 for span in spans)
    assert agent.resource["service.name"] == "steward-export-test"

    # The store and the export hold the same spans.
    assert {span["span_id"] for span in stored} == {span.span_id for span in spans}
    assert {h.get("authorization") for h in receiver.received.headers} == {f"Basic {LANGFUSE_AUTH}"}
    assert {h.get("content-type") for h in receiver.received.headers} == {"application/x-protobuf"}


REQUEST = ModelRequest(model="gpt-4.1-mini", messages=(Message(role="user", content="hi"),))
RESPONSE = ModelResponse(
    provider="openai",
    model="gpt-4.1-mini",
    id="chatcmpl-1",
    content="hello",
    tool_calls=(),
    finish_reason="stop",
    provider_finish_reason="stop",
    usage=Usage(input_tokens=12, output_tokens=3),
)


def exported_chat(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, version: SemconvVersion
) -> dict[str, object]:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    tracing = Tracing(None, flush_interval_ms=20, capture_content=True, genai_semconv=version)
    run_id = str(uuid.uuid4())
    try:
        with run_scope(run_id, "default"), tracing.chat("openai", REQUEST) as recorder:
            recorder.record(RESPONSE, cost_usd=0.001, cost_known=True)
        assert tracing.force_flush(10_000)
    finally:
        tracing.shutdown()
    (chat,) = [span for span in receiver.spans() if span.trace_id == uuid.UUID(run_id).hex]
    return chat.attributes


def test_the_semconv_switch_renames_for_older_backends(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    latest = exported_chat(receiver, monkeypatch, "latest")
    assert latest["gen_ai.provider.name"] == "openai"
    assert "gen_ai.input.messages" in latest and "gen_ai.system" not in latest

    legacy = exported_chat(receiver, monkeypatch, "1.36")
    assert legacy["gen_ai.system"] == "openai"
    assert "gen_ai.provider.name" not in legacy
    assert legacy["gen_ai.prompt"] == latest["gen_ai.input.messages"]
    assert legacy["gen_ai.completion"] == latest["gen_ai.output.messages"]
    assert legacy["gen_ai.usage.input_tokens"] == 12

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    opted_in = exported_chat(receiver, monkeypatch, "1.36")
    assert opted_in["gen_ai.provider.name"] == "openai" and "gen_ai.system" not in opted_in
