"""Agents built for the test suite: step ledgers, slow steps, runaway loops and failures.

The ledger is a JSON-lines file (`STEWARD_TEST_LEDGER`) appended to by every tool execution, so
tests can count how often each step really ran and with which idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

from steward import Context, Steward, ToolContext
from steward.sandbox import run_code

app = Steward()


def _ledger() -> Path:
    return Path(os.environ.get("STEWARD_TEST_LEDGER", ".steward/ledger.jsonl"))


class Steps(BaseModel):
    steps: int = Field(default=3, ge=1, le=1000)
    sleep_s: float = Field(default=0.0, ge=0, le=60)


class Done(BaseModel):
    results: list[int]


@app.tool(writes=True)
async def record_step(index: int, sleep_s: float, ctx: ToolContext) -> int:
    """Append one line to the ledger, then sleep: a slow, countable side effect."""
    with _ledger().open("a") as file:
        file.write(
            json.dumps(
                {
                    "run_id": ctx.run_id,
                    "index": index,
                    "key": ctx.idempotency_key,
                    "pid": os.getpid(),
                    "t": time.time(),
                }
            )
            + "\n"
        )
    await asyncio.sleep(sleep_s)
    return index


@app.agent(name="multistep", max_steps=1000, timeout_s=600)
async def multistep(ctx: Context, input: Steps) -> Done:
    """Runs `steps` ledger-writing tool steps in order."""
    results = []
    for index in range(input.steps):
        results.append(await ctx.tool("record_step", {"index": index, "sleep_s": input.sleep_s}))
    return Done(results=results)


@app.agent(name="runaway", max_steps=5, timeout_s=600)
async def runaway(ctx: Context, input: Steps) -> Done:
    """Never stops on its own: the step cap must end it."""
    index = 0
    while True:
        await ctx.tool("record_step", {"index": index, "sleep_s": 0})
        index += 1


@app.agent(name="sleeper", max_steps=100, timeout_s=1.0)
async def sleeper(ctx: Context, input: Steps) -> Done:
    """Sleeps inside its steps past its one-second wall-time cap."""
    for index in range(input.steps):
        await ctx.tool("record_step", {"index": index, "sleep_s": input.sleep_s})
    return Done(results=[])


@app.agent(name="broken", max_steps=5, timeout_s=10)
async def broken(ctx: Context, input: Steps) -> Done:
    """Raises from agent code after one step."""
    await ctx.tool("record_step", {"index": 0, "sleep_s": 0})
    raise RuntimeError("the agent's own bug")


class Snippet(BaseModel):
    code: str = "print(6 * 7)"


app.add_tool(run_code)


class SandboxReport(BaseModel):
    doubled: str
    state: str
    tool: dict[str, object]
    again: dict[str, object]


@app.agent(name="sandboxed", max_steps=20, timeout_s=120, tools=["run_code"])
async def sandboxed(ctx: Context, input: Snippet) -> SandboxReport:
    """Uses a run sandbox step by step, then the one-line `run_code` tool."""
    async with ctx.sandbox() as box:
        await box.write_file("input.txt", "21")
        doubled = await box.exec(code="print(int(open('input.txt').read()) * 2)")
        await box.exec("echo -n kept > state.txt")
        state = (await box.read_file("state.txt")).decode()
    tool = await ctx.tool("run_code", {"code": input.code})
    again = await ctx.tool("run_code", {"code": "import os; print(os.path.exists('x'))"})
    return SandboxReport(doubled=doubled.stdout.strip(), state=state, tool=tool, again=again)
