"""Agents written with the OpenAI Agents SDK and with Pydantic AI, served through Steward's HTTP
API: their model and tool calls are Steward steps (journaled, traced, capped), so a run survives
its server being SIGKILLed mid-tool and a spend cap stops it before the provider is called."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.cli.loader import load_app
from steward.config import Settings
from steward.models.budget import SpendCaps
from steward.models.settings import GatewaySettings
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import ROOT, StewardProcess, make_process

EXAMPLES = [
    pytest.param(
        ROOT / "examples" / "openai_agents.py", "support_openai_agents", id="openai-agents"
    ),
    pytest.param(ROOT / "examples" / "pydantic_ai.py", "support_pydantic_ai", id="pydantic-ai"),
]
STEPS_APP = str(ROOT / "tests" / "apps" / "adapter_app.py")
STEP_AGENTS = [
    pytest.param("sdk_steps", "sdk_slow_step", id="openai-agents"),
    pytest.param("pydantic_steps", "pydantic_slow_step", id="pydantic-ai"),
]
QUESTION = {"message": "Where is my order 42?"}


def _until(predicate: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def example_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StewardProcess]:
    process = make_process(tmp_path)
    process.apps = [str(request.param)]
    process.start()
    yield process
    process.stop()


def _events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize(("example_server", "agent"), EXAMPLES, indirect=["example_server"])
def test_the_example_answers_through_runs_wait_with_a_journaled_traced_tool_call(
    example_server: StewardProcess, agent: str
) -> None:
    headers = {"x-api-key": example_server.create_key()}
    body = {"assistant_id": agent, "input": QUESTION}
    response = httpx.post(f"{example_server.url}/runs/wait", json=body, headers=headers, timeout=60)

    assert response.status_code == 200, response.text
    # The deterministic local model restates the tool's result: the framework ran the tool.
    assert "status is shipped" in response.json()["output"]
    run = httpx.get(example_server.url + response.headers["content-location"], headers=headers)
    run_id = run.json()["run_id"]
    # model -> tool -> model, each one Steward step
    assert run.json()["usage"]["steps"] == 3
    spans = httpx.get(f"{example_server.url}/runs/{run_id}/trace", headers=headers).json()["spans"]
    names = Counter(span["name"] for span in spans)
    assert names["execute_tool lookup_order"] == 1, names
    assert names["chat dev"] == 2, names
    assert names[f"invoke_agent {agent}"] == 1, names


@pytest.mark.parametrize(("example_server", "agent"), EXAMPLES, indirect=["example_server"])
def test_the_example_streams_model_deltas_and_tool_updates(
    example_server: StewardProcess, agent: str
) -> None:
    headers = {"x-api-key": example_server.create_key()}
    body = {
        "assistant_id": agent,
        "input": QUESTION,
        "stream_mode": ["updates", "messages", "values"],
    }
    response = httpx.post(
        f"{example_server.url}/runs/stream", json=body, headers=headers, timeout=60
    )

    assert response.status_code == 200, response.text
    events = _events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "metadata" and kinds[-1] == "values", kinds
    tool_updates = [data["tool"] for kind, data in events if kind == "updates" and "tool" in data]
    assert [(u["name"], u["result"]["status"]) for u in tool_updates] == [
        ("lookup_order", "shipped")
    ]
    streamed = "".join(data["delta"] for kind, data in events if kind == "messages")
    assert "status is shipped" in streamed
    assert events[-1][1]["output"] == streamed


@pytest.fixture
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


def _step_call(tool: str, index: int, sleep_s: float) -> dict[str, Any]:
    return {
        "tool_calls": [
            {"id": f"call_{index}", "name": tool, "arguments": {"index": index, "sleep_s": sleep_s}}
        ],
        "usage": {"input_tokens": 50, "output_tokens": 10},
    }


@pytest.mark.parametrize(("agent", "tool"), STEP_AGENTS)
def test_a_framework_run_killed_mid_tool_finishes_after_restart_without_repeating_steps(
    tmp_path: Path, upstream: str, agent: str, tool: str
) -> None:
    control = UpstreamControl(upstream)
    control.script(
        _step_call(tool, 0, 0.0),
        _step_call(tool, 1, 3.0),
        {"text": "Both steps ran.", "usage": {"input_tokens": 80, "output_tokens": 5}},
    )
    server = make_process(
        tmp_path,
        STEWARD_MODEL="openai:gpt-4.1-mini",
        OPENAI_API_KEY="sk-test",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
    )
    server.apps = [STEPS_APP]
    try:
        server.start()
        headers = {"x-api-key": server.create_key()}
        run = httpx.post(
            f"{server.url}/runs",
            json={"assistant_id": agent, "input": {"message": "run two steps"}},
            headers=headers,
        ).json()
        # Kill while the second tool call sleeps: two model calls and one tool call are done.
        _until(lambda: len(server.ledger_lines()) >= 2, "the second tool call to start")
        server.kill()
        assert len(control.requests()) == 2

        server.start()
        url = f"{server.url}/threads/{run['thread_id']}/runs/{run['run_id']}"
        finished = _until(
            lambda: (r := httpx.get(url, headers=headers).json())["status"] == "success" and r,
            "the recovered run to finish",
        )
    finally:
        server.stop()

    assert finished["output"] == {"output": "Both steps ran."}
    # Recorded model calls were replayed from the journal: the provider saw three in all.
    assert len(control.requests()) == 3
    lines = server.ledger_lines()
    assert {line["tool"] for line in lines} == {tool}
    executions = Counter(line["index"] for line in lines)
    # The finished tool call ran once; only the one in flight ran again, in the new process.
    assert executions == {0: 1, 1: 2}, executions
    assert len({line["pid"] for line in lines}) == 2
    assert finished["usage"]["steps"] == 5


@pytest.mark.parametrize(("agent", "tool"), STEP_AGENTS)
async def test_a_spend_cap_stops_a_framework_run_before_the_provider_is_called(
    tmp_path: Path, upstream: str, agent: str, tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("STEWARD_OPENAI_BASE_URL", f"{upstream}/v1")
    settings = Settings(
        home=tmp_path,
        model="openai:gpt-4.1-mini",
        apps=[],
        gateway=GatewaySettings(caps=SpendCaps(user_daily_usd=0.0000001)),
    )
    runtime = Runtime.build(settings, load_app(STEPS_APP), execute=True)
    await runtime.start()
    runtime.keys.create("t")  # creates the default tenant
    try:
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent=agent, input={"message": "go"}, user_id="bob")
        )
        finished = await runtime.engine.wait("default", run.id)
    finally:
        await runtime.stop()

    assert (finished.status, finished.stop_reason) == ("limit_exceeded", "spend_cap")
    assert finished.error is not None and "user_daily" in finished.error["message"]
    assert UpstreamControl(upstream).requests() == []


@pytest.mark.parametrize(
    ("agent", "tool"),
    [
        pytest.param("sdk_writer", "sdk_write_step", id="openai-agents"),
        pytest.param("pydantic_writer", "pydantic_write_step", id="pydantic-ai"),
    ],
)
async def test_steward_tool_policy_holds_a_framework_write_after_tool_output_for_approval(
    tmp_path: Path, upstream: str, agent: str, tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The framework's tool calls pass Steward's policy: once tool output (untrusted) is in the
    conversation, a write tool waits for a person instead of running."""
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("STEWARD_TEST_LEDGER", str(ledger))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("STEWARD_OPENAI_BASE_URL", f"{upstream}/v1")
    write = {"usage": {"input_tokens": 50, "output_tokens": 10}}
    UpstreamControl(upstream).script(
        {**write, "tool_calls": [{"id": "call_0", "name": tool, "arguments": {"index": 0}}]},
        {**write, "tool_calls": [{"id": "call_1", "name": tool, "arguments": {"index": 1}}]},
    )
    settings = Settings(home=tmp_path, model="openai:gpt-4.1-mini", apps=[])
    runtime = Runtime.build(settings, load_app(STEPS_APP), execute=True)
    await runtime.start()
    runtime.keys.create("t")  # creates the default tenant
    try:
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent=agent, input={"message": "write two steps"})
        )
        finished = await runtime.engine.wait("default", run.id)
    finally:
        await runtime.stop()

    assert (finished.status, finished.stop_reason) == ("interrupted", "awaiting_approval")
    # The first write ran; the second, decided after its output, did not.
    assert [json.loads(line)["index"] for line in ledger.read_text().splitlines()] == [0]


async def test_the_sdk_streams_a_run_on_stewards_model_provider(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, model="local", apps=[])
    runtime = Runtime.build(settings, load_app(STEPS_APP), execute=True)
    await runtime.start()
    runtime.keys.create("t")  # creates the default tenant
    try:
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent="sdk_streamed", input={"message": "hello"})
        )
        finished = await runtime.engine.wait("default", run.id)
    finally:
        await runtime.stop()

    assert finished.status == "success", finished.error
    assert finished.output is not None
    result = json.loads(finished.output["output"])
    assert result["output"].startswith('You asked: "hello"')
    assert "raw_response_event" in result["events"]
    assert finished.steps == 1  # the one model call, through Context.model


@pytest.mark.parametrize(
    ("agent", "tool"),
    [
        pytest.param("sdk_payer", "sdk_transfer", id="openai-agents"),
        pytest.param("pydantic_payer", "pydantic_transfer", id="pydantic-ai"),
    ],
)
def test_a_framework_tool_that_needs_approval_pauses_and_runs_with_the_edited_arguments(
    tmp_path: Path, upstream: str, agent: str, tool: str
) -> None:
    control = UpstreamControl(upstream)
    control.script(
        {"tool_calls": [{"id": "call_pay", "name": tool, "arguments": {"amount": 25}}]},
        {"text": "Sent."},
    )
    server = make_process(
        tmp_path,
        STEWARD_MODEL="openai:gpt-4.1-mini",
        OPENAI_API_KEY="sk-test",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
    )
    server.apps = [STEPS_APP]
    try:
        server.start()
        headers = {"x-api-key": server.create_key()}
        body = {"assistant_id": agent, "input": {"message": "pay 25"}}
        paused = httpx.post(f"{server.url}/runs/wait", json=body, headers=headers, timeout=60)
        (interrupt,) = paused.json()["__interrupt__"]
        pending = interrupt["value"]
        assert (pending["tool"], pending["arguments"]) == (tool, {"amount": 25})
        assert server.ledger_lines() == []  # nothing ran before the decision

        decided = httpx.post(
            f"{server.url}/runs/{pending['run_id']}/approvals/{interrupt['id']}",
            json={"decision": "approve", "arguments": {"amount": 50}},
            headers=headers,
        )
        assert decided.status_code == 200, decided.text
        location = paused.headers["content-location"]
        finished = httpx.get(f"{server.url}{location}/join", headers=headers, timeout=60)
    finally:
        server.stop()

    assert finished.json()["output"] == "Sent.", finished.text
    # The framework's tool ran once, with the arguments the person approved.
    assert [(line["tool"], line["index"]) for line in server.ledger_lines()] == [(tool, 50)]
    assert len(control.requests()) == 2
