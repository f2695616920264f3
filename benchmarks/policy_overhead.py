"""Time the policy and redaction layers add per tool call and per model call.

The same `Context` calls run twice in this process, interleaved in rounds: once with a
`RunGuard` (decisions, taint, result clean-up, monitors, filtered events and streamed deltas)
and once without; the journal is in memory and spans are off, so the difference is the policy.
Redaction throughput is measured on 1 KB of realistic prose. Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from steward import Context, Steward
from steward.durable.types import JsonObject
from steward.models.budget import Budget
from steward.models.budget.memory import MemorySpendCounters
from steward.models.gateway import Gateway
from steward.models.pricing import load_prices
from steward.models.settings import GatewaySettings
from steward.observe.tracing import Tracing
from steward.policy.guard import RunGuard
from steward.policy.redact import Redactor
from steward.runs.agent import Limits, make_agent

app = Steward()


class Ask(BaseModel):
    message: str


@app.tool()
def lookup_order(order_id: int) -> dict[str, object]:
    """Look up an order's status, carrier and delivery date by its id."""
    return {
        "order_id": order_id,
        "status": "shipped",
        "carrier": "DHL",
        "delivery_date": "2026-11-26",
        "note": "Left with the neighbour at number 12; signature on file.",
    }


async def _agent(ctx: Context, input: Ask) -> str:
    return input.message


AGENT = make_agent(
    _agent,
    name="bench",
    limits=Limits(max_steps=10**9, timeout_s=10**9),
    model="local",
    tools=("lookup_order",),
    description=None,
)


async def _journal(name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
    return await fn()


def _gateway() -> Gateway:
    """The real gateway path (reserve, price, settle) on in-memory counters, no ledger."""
    settings = GatewaySettings()
    return Gateway(
        settings,
        default_model="local",
        budget=Budget(MemorySpendCounters(), settings.caps),
        prices=load_prices(None),
        tracing=Tracing.disabled(),
        ledger=None,
    )


def _context(with_policy: bool) -> Context:
    events: list[Any] = []
    emit = lambda event, data: events.append(data)  # noqa: E731
    tools = app.tools_for(AGENT)
    guard = None
    if with_policy:
        guard = RunGuard(AGENT.policy, tools=tools, emit=emit, output_model=None)
        guard.screen_input({"message": "Where is my order 42?"})
    return Context(
        run_id="bench",
        tenant_id="bench",
        thread_id=None,
        user_id=None,
        agent=AGENT,
        tools=tools,
        journal=_journal,
        tracing=Tracing.disabled(),
        emit=emit,
        deadline=time.time() + 10**9,
        guard=guard,
        gateway=_gateway(),
    )


async def _tool_calls(ctx: Context, n: int) -> float:
    start = time.perf_counter()
    for index in range(n):
        await ctx.tool("lookup_order", {"order_id": index})  # distinct: no loop alert
    return (time.perf_counter() - start) / n


async def _model_calls(ctx: Context, n: int) -> float:
    start = time.perf_counter()
    for index in range(n):
        await ctx.model(f"Tell me a little about the weather on day {index}.", tools=False)
    return (time.perf_counter() - start) / n


async def main(rounds: int, calls: int) -> None:
    tool_on, tool_off, model_on, model_off = [], [], [], []
    for _ in range(rounds):
        tool_off.append(await _tool_calls(_context(False), calls))
        tool_on.append(await _tool_calls(_context(True), calls))
        model_off.append(await _model_calls(_context(False), calls))
        model_on.append(await _model_calls(_context(True), calls))
    redactor = Redactor()
    prose = (
        "Order 42 shipped with DHL on 2026-11-26 and should arrive in three days; "
        "the customer asked us to leave it with the neighbour. "
    ) * 8
    prose = prose[:1024]
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        redactor.redact(prose)
    redaction_us = (time.perf_counter() - start) / n * 1e6

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1e6

    tool_added = med(tool_on) - med(tool_off)
    model_added = med(model_on) - med(model_off)
    print(f"tool call   : {med(tool_off):8.1f} µs bare, {med(tool_on):8.1f} µs with policy")
    print(f"model call  : {med(model_off):8.1f} µs bare, {med(model_on):8.1f} µs with policy")
    print(f"redaction   : {redaction_us:8.1f} µs per KB of prose")
    print(
        f"tool_call_added_us={tool_added:.1f} model_call_added_us={model_added:.1f} "
        f"tool_call_ratio={med(tool_on) / med(tool_off):.2f} "
        f"model_call_ratio={med(model_on) / med(model_off):.2f} "
        f"redaction_us_per_kb={redaction_us:.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.calls))
