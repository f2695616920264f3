"""Code execution with tools: the model writes one program that calls the agent's tools from
the run's sandbox (bubblewrap); each call is a journaled, policed tool step, and only what the
program prints reaches the model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from steward import Context, Steward, ToolContext
from steward.config import Settings
from steward.observe.trace_store import list_run_spans
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.store.schema import Run
from steward.tools.code_mode import CODE_TOOL
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread

app = Steward()
refunds: list[dict[str, Any]] = []


class Task(BaseModel):
    message: str


@app.tool()
def search_invoice(customer_id: int) -> dict[str, Any]:
    """Search the invoices of a customer."""
    rows = [{"id": f"INV-{n:05d}", "amount": 10 + n % 5} for n in range(200)]
    return {"customer_id": customer_id, "invoices": rows}


@app.tool(writes=True)
def create_refund(order_id: str, amount: int, ctx: ToolContext) -> str:
    """Refund an amount on an order."""
    refunds.append({"order_id": order_id, "amount": amount, "key": ctx.idempotency_key})
    return f"refunded {amount} on {order_id}"


@app.agent(name="billing", tools=["search_invoice", "create_refund"])
async def billing(ctx: Context, input: Task) -> str:
    return (await ctx.code_mode().loop(input.message)).text


PROGRAM = """
found = tools.search_invoice(customer_id=42)
total = sum(row["amount"] for row in found["invoices"])
done = tools.create_refund(order_id="7", amount=30)
print("invoices:", len(found["invoices"]), "total:", total, "|", done)
"""
INJECTED = """
found = tools.search_invoice(customer_id=42)
print(tools.create_refund(order_id=found["invoices"][150]["id"], amount=999))
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture
async def runtime(
    tmp_path: Path, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    UpstreamControl(upstream).reset()
    refunds.clear()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("STEWARD_OPENAI_BASE_URL", f"{upstream}/v1")
    settings = Settings(
        home=tmp_path / "home", model="openai:gpt-4.1-mini", apps=[], sandbox_pool_size=0
    )
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def run(runtime: Runtime, message: str) -> Run:
    submitted = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="billing", input={"message": message})
    )
    return await asyncio.wait_for(runtime.engine.wait("default", submitted.id), 120)


async def test_a_program_calls_tools_and_only_its_output_reaches_the_model(
    runtime: Runtime, upstream: str
) -> None:
    control = UpstreamControl(upstream)
    code = {"tool_calls": [{"name": CODE_TOOL, "arguments": {"code": PROGRAM}}]}
    control.script(code, {"text": "Refunded 30 on order 7."})

    finished = await run(runtime, "Refund 30 on order 7 for customer 42.")

    assert finished.status == "success", finished.error
    assert refunds == [{"order_id": "7", "amount": 30, "key": f"{finished.id}:3"}]
    first, second = [r["body"] for r in control.requests()]
    [offered] = first["tools"]
    assert offered["function"]["name"] == CODE_TOOL
    assert (
        "def create_refund(*, order_id: str, amount: int)" in (offered["function"]["description"])
    )
    [answer] = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    result = json.loads(answer)
    assert result["exit_code"] == 0 and result["tool_calls"] == 2
    assert result["stdout"].strip() == "invoices: 200 total: 2400 | refunded 30 on 7"
    assert "INV-00150" not in json.dumps(second)  # the intermediate data stayed in the sandbox
    runtime.tracing.force_flush()
    names = {s["name"] for s in list_run_spans(runtime.db, "default", finished.id)}
    assert {"execute_tool search_invoice", "execute_tool create_refund"} <= names


async def test_a_write_the_program_derives_from_tool_output_waits_for_approval(
    runtime: Runtime, upstream: str
) -> None:
    control = UpstreamControl(upstream)
    code = {"tool_calls": [{"name": CODE_TOOL, "arguments": {"code": INJECTED}}]}
    control.script(code, {"text": "done"})

    paused = await run(runtime, "Refund order 7 for customer 42.")

    assert (paused.status, paused.stop_reason) == ("interrupted", "awaiting_approval")
    assert refunds == []
