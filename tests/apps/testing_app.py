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

from steward import Context, Steward, ToolContext, ToolError
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


class Transfer(BaseModel):
    amount: int = Field(default=10, ge=1)
    sleep_s: float = Field(default=0.0, ge=0, le=60)


class TransferResult(BaseModel):
    outcome: str
    detail: object = None


@app.tool(writes=True, needs_approval=True)
def transfer(amount: int, ctx: ToolContext) -> dict[str, object]:
    """Move money: a write that a person must approve first."""
    with _ledger().open("a") as file:
        file.write(
            json.dumps(
                {
                    "run_id": ctx.run_id,
                    "tool": "transfer",
                    "amount": amount,
                    "key": ctx.idempotency_key,
                    "pid": os.getpid(),
                    "t": time.time(),
                }
            )
            + "\n"
        )
    return {"transferred": amount}


@app.agent(name="approver", max_steps=10, timeout_s=2.0, approval_timeout_s=60)
async def approver(ctx: Context, input: Transfer) -> TransferResult:
    """Records a step, asks to transfer (paused for approval), then records another step.

    Its two-second wall-time cap is far shorter than the waits in the tests: time spent
    waiting for a person must not count against it.
    """
    await ctx.tool("record_step", {"index": 0, "sleep_s": input.sleep_s})
    try:
        result = await ctx.tool("transfer", {"amount": input.amount})
    except ToolError as exc:
        return TransferResult(outcome="refused", detail=str(exc))
    await ctx.tool("record_step", {"index": 1, "sleep_s": 0})
    return TransferResult(outcome="done", detail=result)


class Note(BaseModel):
    text: str = Field(min_length=1, max_length=200)
    sleep_s: float = Field(default=0.0, ge=0, le=60)


class Notes(BaseModel):
    notes: list[str]


@app.agent(name="notebook", max_steps=10, timeout_s=60)
async def notebook(ctx: Context, input: Note) -> Notes:
    """Appends to the notes its thread already holds: a conversation's state across runs."""
    notes = list(ctx.thread_state.get("notes", []))
    await ctx.tool("record_step", {"index": len(notes), "sleep_s": input.sleep_s})
    return Notes(notes=[*notes, input.text])


@app.agent(name="impatient", max_steps=10, timeout_s=60, approval_timeout_s=1.0)
async def impatient(ctx: Context, input: Transfer) -> TransferResult:
    """Asks for a transfer but gives the reviewer only one second."""
    try:
        result = await ctx.tool("transfer", {"amount": input.amount})
    except ToolError as exc:
        return TransferResult(outcome="refused", detail=str(exc))
    return TransferResult(outcome="done", detail=result)
