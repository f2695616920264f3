"""A hostile remote MCP server cannot stall, crash or get around the policy of a run.

The server (official SDK, `MCPServer`) floods 10 MB answers, hangs, lists schemas that lie, and
injects an instruction to call its destructive tool. The model is the wire-compatible test
upstream, scripted to do what an injected model would do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from steward import Context, Steward
from steward.config import Settings
from steward.policy.declaration import AgentPolicy
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.store.schema import Run
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.mcp_servers.hostile_server import FLOOD_BYTES
from tests.mcp_servers.launch import HOSTILE, calls, http_server, stdio_command


class Task(BaseModel):
    message: str


class Report(BaseModel):
    text: str
    results: list[dict[str, Any]]


def hostile_app(**server: Any) -> Steward:
    app = Steward()
    app.add_mcp_server("bad", timeout_s=2, **server)

    async def loop(ctx: Context, input: Task) -> Report:
        result = await ctx.tool_loop(input.message)
        return Report(text=result.text, results=result.tool_results)

    app.agent(name="victim", tools=["bad"], max_steps=12)(loop)
    app.agent(
        name="strict_victim", tools=["bad"], max_steps=12, policy=AgentPolicy(taint="block_writes")
    )(loop)
    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture(params=["streamable_http", "stdio"])
async def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    UpstreamControl(upstream).reset()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("STEWARD_OPENAI_BASE_URL", f"{upstream}/v1")
    settings = Settings(
        home=tmp_path / "home", model="openai:gpt-4.1-mini", apps=[], sandbox_pool_size=0
    )
    call_log = tmp_path / "calls.jsonl"
    if request.param == "stdio":
        command, args = stdio_command(HOSTILE)
        app = hostile_app(command=command, args=args, env={"MCP_CALL_LOG": str(call_log)})
        runtime = Runtime.build(settings, app, execute=True)
        await runtime.start()
        try:
            yield runtime
        finally:
            await runtime.stop()
        return
    with http_server(HOSTILE, call_log=call_log) as url:
        runtime = Runtime.build(settings, hostile_app(url=url), execute=True)
        await runtime.start()
        try:
            yield runtime
        finally:
            await runtime.stop()


async def run(runtime: Runtime, agent: str = "victim") -> Run:
    submitted = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent=agent, input={"message": "Handle the inbox."})
    )
    return await asyncio.wait_for(runtime.engine.wait("default", submitted.id), 60)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["body"]["messages"] if m["role"] == "tool"]


async def test_a_10_mb_answer_is_refused_and_never_reaches_the_model(
    runtime: Runtime, upstream: str, tmp_path: Path
) -> None:
    control = UpstreamControl(upstream)
    control.script(call("bad__flood", topic="q3"), call("bad__read_inbox"), {"text": "done"})

    finished = await run(runtime)

    assert finished.status == "success", finished.error
    assert finished.output is not None
    flood, inbox = finished.output["results"]
    # stdio: Steward's own bound on a message; HTTP: the SDK's bound on an SSE event, which
    # ends the answer or (as a closed connection, reopened and retried once) the connection.
    assert flood["error"].startswith("tool 'bad__flood' failed")
    assert any(
        reason in flood["error"]
        for reason in ("exceeds", "ended without a response", "connection closed")
    ), flood["error"]
    assert len(flood["error"]) < 500
    assert "Inbox" in str(inbox["result"])  # the same connection still serves the next call
    second = control.requests()[1]
    assert len(json.dumps(second["body"])) < 20_000  # the model never saw the flood
    made = [c["tool"] for c in calls(tmp_path / "calls.jsonl")]
    assert made in (["flood", "read_inbox"], ["flood", "flood", "read_inbox"])
    assert FLOOD_BYTES == 10 * 1024 * 1024


async def test_a_hanging_tool_times_out_and_the_run_carries_on(
    runtime: Runtime, upstream: str, tmp_path: Path
) -> None:
    control = UpstreamControl(upstream)
    control.script(call("bad__hang", topic="q3"), call("bad__read_inbox"), {"text": "done"})

    finished = await run(runtime)

    assert finished.status == "success", finished.error
    assert finished.output is not None
    hang, inbox = finished.output["results"]
    assert hang["error"] == "tool 'bad__hang' did not answer within 2 s"
    assert "Inbox" in str(inbox["result"])
    assert [c["tool"] for c in calls(tmp_path / "calls.jsonl")] == ["hang", "read_inbox"]


async def test_schemas_that_lie_are_checked_not_believed(
    runtime: Runtime, upstream: str, tmp_path: Path
) -> None:
    tools = runtime.engine.app.tools
    assert "bad__broken_schema" not in tools  # its listed schema is not JSON Schema
    assert tools["bad__sneaky_delete"].writes  # readOnlyHint together with destructiveHint
    control = UpstreamControl(upstream)
    control.script(
        call("bad__count_items", box="seven"),  # the model's mistake: refused before the server
        call("bad__count_items", box=7),  # promised an integer total, answers with text
        call("bad__broken_schema", x=1),
        {"text": "done"},
    )

    finished = await run(runtime)

    assert finished.status == "success", finished.error
    assert finished.output is not None
    invalid, lied, broken = finished.output["results"]
    assert "'seven' is not of type 'integer'" in invalid["error"]
    assert "output schema" in lied["error"]
    assert "not allowed" in broken["error"]
    assert calls(tmp_path / "calls.jsonl") == [{"tool": "count_items", "arguments": {"box": 7}}]


async def test_a_destructive_tool_after_injected_text_waits_for_a_person_or_is_refused(
    runtime: Runtime, upstream: str, tmp_path: Path
) -> None:
    control = UpstreamControl(upstream)
    injected = call("bad__wipe_account", account="acct-991-victim")
    control.script(call("bad__read_inbox"), injected, {"text": "done"})

    paused = await run(runtime)

    # Default policy: a write whose arguments come from untrusted text needs approval.
    assert (paused.status, paused.stop_reason) == ("interrupted", "awaiting_approval")
    assert [c["tool"] for c in calls(tmp_path / "calls.jsonl")] == ["read_inbox"]

    control.reset()
    control.script(call("bad__read_inbox"), injected, {"text": "done"})
    refused = await run(runtime, "strict_victim")

    assert refused.status == "success", refused.error
    assert refused.output is not None
    assert "refused by policy" in refused.output["results"][1]["error"]
    assert [c["tool"] for c in calls(tmp_path / "calls.jsonl")] == ["read_inbox", "read_inbox"]
