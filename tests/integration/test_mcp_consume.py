"""Agent runs that use tools of remote MCP servers (written with the official SDK's
`MCPServer`, started by the test as real processes) over streamable HTTP and over stdio.

The model (Steward's local stand-in) picks the remote tool from its imported schema; the call
goes through the engine like any tool: validation, policy, runner, span, journaled step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from steward import Context, Steward, ToolError
from steward.config import Settings
from steward.observe.trace_store import list_run_spans
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.store.schema import Run
from steward.tools.mcp_tools import IDEMPOTENCY_META, SPAN_SERVER, SPAN_TRANSPORT
from tests.mcp_servers.launch import CRM, calls, http_server, stdio_command


class Question(BaseModel):
    message: str


class Answer(BaseModel):
    text: str
    tools: list[str]


class Noted(BaseModel):
    result: str


def crm_app(**server: object) -> Steward:
    app = Steward()
    app.add_mcp_server("crm", **server)  # type: ignore[arg-type]

    @app.agent(name="crm_agent", tools=["crm"])
    async def crm_agent(ctx: Context, input: Question) -> Answer:
        loop = await ctx.tool_loop(input.message)
        return Answer(text=loop.text, tools=[r["tool"] for r in loop.tool_results])

    @app.agent(name="note_agent", tools=["crm"])
    async def note_agent(ctx: Context, input: Question) -> Noted:
        result = await ctx.tool("crm__add_note", {"customer_id": 42, "note": input.message})
        return Noted(result=result["result"])  # MCPServer wraps a str return as structured

    return app


async def started(tmp_path: Path, app: Steward, before: Callable[[Runtime], None]) -> Runtime:
    settings = Settings(home=tmp_path / "home", model="local", apps=[], sandbox_pool_size=0)
    runtime = Runtime.build(settings, app, execute=True)
    before(runtime)
    await runtime.start()
    return runtime


async def finish(runtime: Runtime, agent: str, message: str) -> Run:
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent=agent, input={"message": message})
    )
    return await asyncio.wait_for(runtime.engine.wait("default", run.id), 60)


@pytest.fixture(params=["streamable_http", "stdio"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    call_log = tmp_path / "calls.jsonl"
    if request.param == "stdio":
        command, args = stdio_command(CRM)
        app = crm_app(command=command, args=args, env={"MCP_CALL_LOG": str(call_log)})
        runtime = await started(tmp_path, app, lambda _: None)
        try:
            yield runtime
        finally:
            await runtime.stop()
        return
    # Over HTTP the server demands a bearer token, read from the tenant's secret store.
    with http_server(CRM, token="tok-crm-123", call_log=call_log) as url:
        app = crm_app(url=url, token_secret="CRM_TOKEN")

        def store_token(rt: Runtime) -> None:
            rt.security.secrets.set("default", "CRM_TOKEN", "tok-crm-123")

        runtime = await started(tmp_path, app, store_token)
        try:
            yield runtime
        finally:
            await runtime.stop()


async def test_an_agent_run_calls_a_remote_mcp_tool_the_model_picked(
    runtime: Runtime, tmp_path: Path
) -> None:
    tools = runtime.engine.app.tools
    assert {"crm__lookup_customer", "crm__add_note", "crm__enable_pricing"} <= set(tools)
    assert not tools["crm__lookup_customer"].writes  # readOnlyHint
    assert tools["crm__add_note"].writes  # no annotations: treated as writing

    finished = await finish(runtime, "crm_agent", "Look up CRM customer 42")

    assert finished.status == "success", finished.error
    assert finished.output is not None
    assert finished.output["tools"] == ["crm__lookup_customer"]
    assert "Ada Lovelace" in finished.output["text"]
    assert calls(tmp_path / "calls.jsonl") == [
        {"tool": "lookup_customer", "arguments": {"customer_id": 42}}
    ]
    runtime.tracing.force_flush()
    spans = {s["name"]: s for s in list_run_spans(runtime.db, "default", finished.id)}
    span = spans["execute_tool crm__lookup_customer"]["attributes"]
    assert span["gen_ai.tool.name"] == "crm__lookup_customer"
    assert span[SPAN_SERVER] == "crm"
    assert span[SPAN_TRANSPORT] in ("streamable_http", "stdio")


async def test_a_remote_write_tool_gets_the_steps_idempotency_key(
    runtime: Runtime, tmp_path: Path
) -> None:
    finished = await finish(runtime, "note_agent", "called back")

    assert finished.status == "success", finished.error
    assert finished.output == {"result": "note added to 42"}
    [call] = calls(tmp_path / "calls.jsonl")
    assert call["tool"] == "add_note"
    assert call["arguments"] == {
        "customer_id": 42,
        "note": "called back",
        "idempotency_key": f"{finished.id}:1",
    }
    assert IDEMPOTENCY_META == "steward/idempotency_key"


async def test_tools_are_imported_again_when_the_server_says_its_list_changed(
    runtime: Runtime,
) -> None:
    app = runtime.engine.app
    assert "crm__plan_price" not in app.tools

    finished = await finish(runtime, "crm_agent", "Enable CRM pricing")
    assert finished.status == "success", finished.error
    assert finished.output is not None and finished.output["tools"] == ["crm__enable_pricing"]

    for _ in range(200):  # the notification is handled as it arrives, off the run's path
        if "crm__plan_price" in app.tools:
            break
        await asyncio.sleep(0.05)
    assert "crm__plan_price" in app.tools
    assert "crm__plan_price" in app.tools_for(app.agents["crm_agent"])


async def test_a_server_on_http_refuses_steward_without_the_tenants_token(
    tmp_path: Path,
) -> None:
    with http_server(CRM, token="tok-crm-123") as url:
        app = crm_app(url=url, token_secret="CRM_TOKEN")

        def wrong_token(rt: Runtime) -> None:
            rt.security.secrets.set("default", "CRM_TOKEN", "not-the-token")

        runtime = await started(tmp_path, app, wrong_token)
        try:
            assert "crm__lookup_customer" not in app.tools  # not imported: 401
            finished = await finish(runtime, "note_agent", "hello")
            assert finished.status == "error"
            assert finished.error is not None
            assert "crm__add_note" in finished.error["message"]
        finally:
            await runtime.stop()


async def test_a_stdio_server_that_dies_is_started_again_by_the_next_call(
    tmp_path: Path,
) -> None:
    call_log = tmp_path / "calls.jsonl"
    command, args = stdio_command(CRM)
    app = Steward()
    app.add_mcp_server("crm", command=command, args=args, env={"MCP_CALL_LOG": str(call_log)})

    @app.agent(name="crasher", tools=["crm"])
    async def crasher(ctx: Context, input: Question) -> Noted:
        try:
            await ctx.tool("crm__crash_server")
        except ToolError as exc:
            first = str(exc)
        else:
            first = "no error"
        customer = await ctx.tool("crm__lookup_customer", {"customer_id": 7})
        return Noted(result=f"{first} | {customer['name']}")

    runtime = await started(tmp_path, app, lambda _: None)
    try:
        finished = await finish(runtime, "crasher", "go")
    finally:
        await runtime.stop()

    assert finished.status == "success", finished.error
    assert finished.output is not None
    first, name = finished.output["result"].split(" | ")
    assert "crm__crash_server" in first and "after 2 attempts" in first
    assert name == "Alan Turing"
    # A read-only tool is tried once more on a new connection (and kills that one too).
    tools = [c["tool"] for c in calls(call_log)]
    assert tools == ["crash_server", "crash_server", "lookup_customer"]


async def test_a_tenants_own_server_is_invisible_to_other_tenants(tmp_path: Path) -> None:
    call_log = tmp_path / "calls.jsonl"
    command, args = stdio_command(CRM)
    app = crm_app(command=command, args=args, env={"MCP_CALL_LOG": str(call_log)}, tenant="acme")
    runtime = await started(tmp_path, app, lambda rt: rt.keys.create("acme", tenant_id="acme"))
    try:
        outsider = await finish(runtime, "crm_agent", "Look up CRM customer 42")
        run = await runtime.engine.submit(
            RunRequest(
                tenant_id="acme", agent="crm_agent", input={"message": "Look up CRM customer 42"}
            )
        )
        owner = await asyncio.wait_for(runtime.engine.wait("acme", run.id), 60)
        refused = await finish(runtime, "note_agent", "from another tenant")
    finally:
        await runtime.stop()

    assert outsider.status == "success" and outsider.output is not None
    assert outsider.output["tools"] == []  # the model of tenant default was not offered them
    assert owner.status == "success" and owner.output is not None
    assert owner.output["tools"] == ["crm__lookup_customer"]
    assert refused.status == "error" and refused.error is not None
    assert "not available to this tenant" in refused.error["message"]
    assert [c["tool"] for c in calls(call_log)] == ["lookup_customer"]
