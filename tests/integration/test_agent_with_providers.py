"""An agent run whose model calls go over real HTTP to the wire-compatible upstream.

The run engine, the provider client and the span pipeline run as in production; only the
paid model is replaced, by a server that speaks its wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from steward.cli.loader import load_app
from steward.config import Settings
from steward.observe.trace_store import list_run_spans
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture(params=["openai", "anthropic"])
def model_string(
    request: pytest.FixtureRequest, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    UpstreamControl(upstream).reset()
    if request.param == "openai":
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
        monkeypatch.setenv("STEWARD_OPENAI_BASE_URL", f"{upstream}/v1")
        return "openai:gpt-4.1-mini"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("STEWARD_ANTHROPIC_BASE_URL", upstream)
    return "anthropic:claude-sonnet-4-5"


@pytest.fixture
async def runtime(tmp_path: Path, model_string: str) -> AsyncIterator[Runtime]:
    settings = Settings(home=tmp_path, model=model_string, apps=[])
    runtime = Runtime.build(settings, load_app(str(ROOT / "examples" / "support.py")), execute=True)
    await runtime.start()
    runtime.keys.create("t")
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_support_agent_calls_tool_chosen_by_provider_and_prices_usage(
    runtime: Runtime, upstream: str, model_string: str
) -> None:
    control = UpstreamControl(upstream)
    control.script(
        {
            "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 42}}],
            "usage": {"input_tokens": 1200, "output_tokens": 20, "cache_read_tokens": 1000},
        },
        {
            "text": "Order 42 has shipped with DHL.",
            "usage": {"input_tokens": 1300, "output_tokens": 12, "cache_read_tokens": 1000},
        },
    )
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="support", input={"message": "Where is my order 42?"})
    )
    finished = await runtime.engine.wait("default", run.id)

    assert finished.status == "success", finished.error
    assert finished.output == {
        "answer": "Order 42 has shipped with DHL.",
        "tools_used": ["lookup_order"],
    }
    assert (finished.steps, finished.input_tokens, finished.output_tokens) == (3, 2500, 32)
    assert finished.cache_read_tokens == 2000
    assert finished.cost_usd > 0

    runtime.tracing.force_flush()
    spans = {s["name"]: s for s in list_run_spans(runtime.db, "default", run.id)}
    model = model_string.split(":", 1)[1]
    chat = spans[f"chat {model}"]["attributes"]
    assert chat["gen_ai.provider.name"] == model_string.split(":", 1)[0]
    assert chat["gen_ai.usage.input_tokens"] == 1300
    assert chat["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert chat["gen_ai.response.time_to_first_chunk"] > 0
    assert chat["gen_ai.usage.cost"] > 0
    assert "gen_ai.input.messages" not in chat  # content capture is off by default
    tool = spans["execute_tool lookup_order"]["attributes"]
    assert tool["gen_ai.tool.name"] == "lookup_order"
    agent = spans["invoke_agent support"]["attributes"]
    assert "gen_ai.usage.input_tokens" not in agent  # usage lives on model spans only

    sent = control.requests()
    assert len(sent) == 2
    assert sent[0]["body"]["stream"] is True  # the engine streams to measure first chunk


async def test_provider_failure_ends_run_with_model_error_not_an_exception(
    runtime: Runtime, upstream: str
) -> None:
    UpstreamControl(upstream).faults(error_status=400, times=1)
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="support", input={"message": "Where is my order 42?"})
    )
    finished = await runtime.engine.wait("default", run.id)
    assert (finished.status, finished.stop_reason) == ("error", "model_error")
    assert finished.error is not None and "400" in finished.error["message"]


async def test_missing_provider_key_ends_run_with_guidance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OPENAI_API_KEY", "STEWARD_OPENAI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    settings = Settings(home=tmp_path, model="openai:gpt-4.1-mini", apps=[])
    runtime = Runtime.build(settings, load_app(str(ROOT / "examples" / "support.py")), execute=True)
    await runtime.start()
    try:
        runtime.keys.create("t")
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent="support", input={"message": "hi"})
        )
        finished = await runtime.engine.wait("default", run.id)
    finally:
        await runtime.stop()
    assert (finished.status, finished.stop_reason) == ("error", "config_error")
    assert finished.error is not None
    assert "OPENAI_API_KEY" in finished.error["message"]
    assert "STEWARD_MODEL=local" in finished.error["message"]
