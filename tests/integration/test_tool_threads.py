"""Plain `def` tools run in a bounded thread pool, never on the event loop: a tool that blocks
stalls only its own run, while other runs on the same worker go on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from steward import Context, Steward, ToolContext
from steward.config import Settings
from steward.runs.engine import RunRequest
from steward.runtime import Runtime

app = Steward()
started = threading.Event()
released = threading.Event()


class Empty(BaseModel):
    pass


class Released(BaseModel):
    released: bool
    run_id: str = ""


@app.tool()
def wait_for_release(ctx: ToolContext) -> dict[str, object]:
    """Block this thread until another run releases it (or give up after a while)."""
    started.set()
    # Bounded, so the old code (this call on the event loop) fails the test instead of hanging;
    # generous, so a loaded machine starting the other run slowly does not fail it.
    return {"released": released.wait(timeout=30), "run_id": ctx.run_id}


@app.tool()
def release() -> bool:
    """Release the waiting tool."""
    released.set()
    return True


@app.agent(name="waiter", tools=["wait_for_release"])
async def waiter(ctx: Context, input: Empty) -> Released:
    return Released.model_validate(await ctx.tool("wait_for_release"))


@app.agent(name="releaser", tools=["release"])
async def releaser(ctx: Context, input: Empty) -> Released:
    return Released(released=await ctx.tool("release"))


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(home=tmp_path / "home", model="local", apps=[], tool_threads=2)
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_a_blocking_sync_tool_does_not_stall_another_run_on_the_same_worker(
    runtime: Runtime,
) -> None:
    started.clear()
    released.clear()
    runtime.keys.create("t", tenant_id="default")
    engine = runtime.engine
    waiting = await engine.submit(RunRequest(tenant_id="default", agent="waiter", input={}))
    assert await asyncio.to_thread(started.wait, 30)
    # The waiter's tool is blocked now; the releaser must still get to run its own tool.
    releasing = await engine.submit(RunRequest(tenant_id="default", agent="releaser", input={}))
    done = await asyncio.wait_for(engine.wait("default", releasing.id), 60)
    assert done.status == "success", done.error
    finished = await asyncio.wait_for(engine.wait("default", waiting.id), 60)
    assert finished.status == "success", finished.error
    assert finished.output == {"released": True, "run_id": waiting.id}
