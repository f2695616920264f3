"""Agents that use the long-term store (`ctx.store`), for the LangGraph Platform tests."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from steward import Context, Steward, ToolContext

app = Steward()


class Note(BaseModel):
    user: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$")
    key: str = Field(min_length=1, max_length=100)
    text: str


class Remembered(BaseModel):
    stored: dict[str, Any] | None
    notes: list[str]
    scratch_after_delete: dict[str, Any] | None


@app.agent(name="memory")
async def memory(ctx: Context, input: Note) -> Remembered:
    """Stores a note for the user, reads it back, lists the user's notes, deletes a scratch item."""
    namespace = ("notes", input.user)
    await ctx.store.put(namespace, input.key, {"text": input.text})
    await ctx.store.put((*namespace, "scratch"), "tmp", {"text": "scratch"}, ttl=5)
    stored = await ctx.store.get(namespace, input.key)
    found = await ctx.store.search(namespace, filter={"text": {"$ne": "scratch"}}, limit=50)
    await ctx.store.delete((*namespace, "scratch"), "tmp")
    scratch = await ctx.store.get((*namespace, "scratch"), "tmp")
    return Remembered(
        stored=stored.value if stored else None,
        notes=sorted(item.key for item in found),
        scratch_after_delete=scratch.value if scratch else None,
    )


class Bump(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$")
    pause_s: float = Field(default=0.0, ge=0, le=30)


class Bumped(BaseModel):
    read: int
    wrote: int


def _ledger() -> Path:
    return Path(os.environ.get("STEWARD_TEST_LEDGER", ".steward/ledger.jsonl"))


@app.tool(writes=True)
async def pause(seconds: float, ctx: ToolContext) -> bool:
    """Append a line to the test ledger, then sleep: a point where a test can kill the run."""
    with _ledger().open("a") as file:
        file.write(json.dumps({"run_id": ctx.run_id, "index": 0, "pid": os.getpid()}) + "\n")
    await asyncio.sleep(seconds)
    return True


@app.agent(name="counter", tools=["pause"])
async def counter(ctx: Context, input: Bump) -> Bumped:
    """Read a counter, store it plus one, then pause: a replay must not bump it twice."""
    item = await ctx.store.get(("counters",), input.name)
    read = int(item.value["n"]) if item else 0
    await ctx.store.put(("counters",), input.name, {"n": read + 1})
    await ctx.tool("pause", {"seconds": input.pause_s})
    return Bumped(read=read, wrote=read + 1)


class Ask(BaseModel):
    approve_first: bool = False
    pause_s: float = Field(default=0.0, ge=0, le=30)


class Settings(BaseModel):
    config: dict[str, Any]
    context: dict[str, Any]
    after_resume: dict[str, Any] | None = None


@app.tool(writes=True, needs_approval=True)
def confirm(ctx: ToolContext) -> bool:
    """A step a person approves first: a point where the run pauses and is resumed."""
    return bool(ctx.idempotency_key)


@app.agent(name="configured", tools=["confirm", "pause"], approval_timeout_s=120)
async def configured(ctx: Context, input: Ask) -> Settings:
    """Answers the LangGraph `config` and `context` it runs with, and again after an approval
    or a pause (a point where a test can kill the run)."""
    seen = {"config": dict(ctx.config), "context": dict(ctx.run_context)}
    if not input.approve_first and not input.pause_s:
        return Settings(**seen)
    if input.approve_first:
        await ctx.tool("confirm", {})
    if input.pause_s:
        await ctx.tool("pause", {"seconds": input.pause_s})
    after = {"config": dict(ctx.config), "context": dict(ctx.run_context)}
    return Settings(**seen, after_resume=after)


class Nothing(BaseModel):
    pass


@app.agent(name="released")
async def released(ctx: Context, input: Nothing) -> Nothing:
    """An agent the rollout tests deploy versions of (no other test runs it)."""
    return Nothing()
