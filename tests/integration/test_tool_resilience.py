"""Tool resilience through the engine: settings override a tool's breaker, an open breaker
answers the agent at once with an error it can work around (the tool is not called), and the
state shows on the run's `execute_tool` span and on `/metrics`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from steward import Context, Steward, ToolError
from steward.config import Settings
from steward.observe.trace_store import list_run_spans
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.tools.runner import BREAKER_STATE

app = Steward()
crm_calls: list[str] = []


class Empty(BaseModel):
    pass


class Outcome(BaseModel):
    error: str


@app.tool()  # declares the default breaker (5 failures); the settings below lower it to 2
def crm_lookup() -> str:
    """Look a customer up in the CRM."""
    crm_calls.append("called")
    raise ConnectionError("CRM unreachable")


@app.agent(name="crm_agent", tools=["crm_lookup"])
async def crm_agent(ctx: Context, input: Empty) -> Outcome:
    try:
        await ctx.tool("crm_lookup")
    except ToolError as exc:  # what tool_loop hands the model: the agent carries on
        return Outcome(error=str(exc))
    return Outcome(error="")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        home=tmp_path / "home",
        model="local",
        apps=[],
        sandbox_pool_size=0,
        tools={"crm_lookup": {"breaker_failures": 2, "breaker_cooloff_s": 600}},
    )
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def run_once(runtime: Runtime) -> tuple[str, str]:
    run = await runtime.engine.submit(RunRequest(tenant_id="default", agent="crm_agent", input={}))
    finished = await asyncio.wait_for(runtime.engine.wait("default", run.id), 30)
    assert finished.status == "success" and finished.output is not None, finished.error
    return run.id, str(finished.output["error"])


async def test_an_open_tool_breaker_answers_runs_at_once_and_shows_in_spans_and_metrics(
    runtime: Runtime,
) -> None:
    crm_calls.clear()
    runtime.keys.create("t", tenant_id="default")
    for _ in range(2):
        _, error = await run_once(runtime)
        assert "ConnectionError: CRM unreachable" in error
    run_id, error = await run_once(runtime)
    assert "'crm_lookup' is unavailable" in error and "another tool" in error
    assert len(crm_calls) == 2  # the third run's call never reached the CRM

    runtime.tracing.force_flush(5_000)
    spans = await asyncio.to_thread(list_run_spans, runtime.db, "default", run_id)
    (tool_span,) = [s for s in spans if s["name"] == "execute_tool crm_lookup"]
    assert tool_span["attributes"][BREAKER_STATE] == "open"
    exposition = runtime.gateway.metrics.exposition().decode()
    assert 'steward_tool_breaker_state{tenant="default",tool="crm_lookup"} 2.0' in exposition
