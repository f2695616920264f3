"""A paused call's approval row exists before its interrupt reaches the stream, so a reviewer
who decides the instant the interrupt arrives never gets 404."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from steward import Context, Steward, ToolContext
from steward.config import Settings
from steward.errors import NotFound
from steward.runs.engine import RunRequest, run_channel
from steward.runtime import Runtime

app = Steward()


class Amount(BaseModel):
    amount: int


class Done(BaseModel):
    sent: int


@app.tool(writes=True, needs_approval=True)
def send_money(amount: int, ctx: ToolContext) -> int:
    """Send money."""
    return amount


@app.agent(name="payer", tools=["send_money"])
async def payer(ctx: Context, input: Amount) -> Done:
    return Done(sent=await ctx.tool("send_money", {"amount": input.amount}))


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(home=tmp_path / "home", model="local", apps=[], sandbox_pool_size=0)
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def decide_on_first_interrupt(runtime: Runtime, run_id: str) -> str:
    """Read the run's stream; approve the moment an interrupt shows up. The outcome."""
    async for _, event in runtime.hot.read(run_channel(run_id)):
        interrupts = (event.get("data") or {}).get("__interrupt__")
        if event["event"] == "updates" and interrupts:
            try:
                await runtime.engine.decide("default", interrupts[0]["id"], approve=True)
            except NotFound:
                return "404"
            return "decided"
        if event["event"] == "end":
            return "ended without an interrupt"
    return "stream ended"  # pragma: no cover - read() never ends


async def test_a_reviewer_deciding_as_soon_as_the_interrupt_arrives_finds_the_approval(
    runtime: Runtime,
) -> None:
    runtime.keys.create("t", tenant_id="default")
    for amount in range(1, 4):  # a few times: the old order lost this race every time
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent="payer", input={"amount": amount})
        )
        outcome = await asyncio.wait_for(decide_on_first_interrupt(runtime, run.id), 30)
        assert outcome == "decided"
        finished = await asyncio.wait_for(runtime.engine.wait("default", run.id), 30)
        assert (finished.status, finished.output) == ("success", {"sent": amount})
