"""Every way out of a run records a terminal status: a failure around the agent (reading the
thread's values, releasing policy decisions at the end) ends the run in `error` with a stop
reason, frees its thread and wakes its waiters, instead of leaving it `running` forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import text

from steward import Context, Steward, ToolContext
from steward.config import Settings
from steward.policy.record import PolicyEvent
from steward.runs.approval import approval_topic
from steward.runs.engine import RunRequest, run_channel
from steward.runtime import Runtime
from steward.store.schema import Run

app = Steward()


class Note(BaseModel):
    text: str


@app.agent(name="echo")
async def echo(ctx: Context, input: Note) -> Note:
    return Note(text=input.text)


class BrokenSink:
    """A decision sink (say, a user's own export) that fails on every event."""

    def record(self, event: PolicyEvent) -> None:
        raise RuntimeError(f"export of {event.kind} failed")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(home=tmp_path / "home", model="local", apps=[], sandbox_pool_size=0)
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    runtime.keys.create("t", tenant_id="default")
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_a_broken_thread_row_ends_the_run_in_error_and_frees_the_thread(
    runtime: Runtime,
) -> None:
    engine = runtime.engine
    await asyncio.to_thread(engine.store.create_thread, "default", "t-broken", {})
    with runtime.db.engine.begin() as conn:  # a row no JSON decoder can read (SQLite)
        conn.execute(text("UPDATE threads SET \"values\" = '{broken' WHERE id = 't-broken'"))
    request = RunRequest(
        tenant_id="default", agent="echo", input={"text": "hi"}, thread_id="t-broken"
    )
    run = await engine.submit(request)
    # Bounded: before the fix this run stayed `running` and the wait never returned.
    ended = await asyncio.wait_for(engine.wait("default", run.id), 30)
    assert (ended.status, ended.stop_reason) == ("error", "internal_error")
    assert ended.error is not None and ended.error["error"] == "JSONDecodeError"
    assert not ended.active
    # The thread is free again: a new run is accepted (no 409) and ends too.
    again = await engine.submit(request)
    assert (await asyncio.wait_for(engine.wait("default", again.id), 30)).status == "error"


async def test_a_failing_decision_sink_at_the_end_of_a_run_still_ends_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "decision_sinks", [BrokenSink()])
    engine = runtime.engine
    # A card number in the output is always redacted (an e-mail address the user typed no
    # longer is); the tally is released as the run ends.
    run = await engine.submit(
        RunRequest(tenant_id="default", agent="echo", input={"text": "card 4111 1111 1111 1111"})
    )
    ended = await asyncio.wait_for(engine.wait("default", run.id), 30)
    assert (ended.status, ended.stop_reason) == ("error", "internal_error")
    assert ended.error == {"error": "RuntimeError", "message": "export of redaction failed"}
    thread = await asyncio.to_thread(engine.store.get_thread, "default", ended.thread_id)
    assert thread is not None and thread.status == "error"


class Amount(BaseModel):
    amount: int


@app.tool(writes=True, needs_approval=True)
def pay(amount: int, ctx: ToolContext) -> int:
    """Pay an amount."""
    return amount


@app.agent(name="payer", tools=["pay"])
async def payer(ctx: Context, input: Amount) -> Amount:
    return Amount(amount=await ctx.tool("pay", {"amount": input.amount}))


async def end_of(runtime: Runtime, run_id: str) -> Run:
    """The run once its terminal event is published (`wait` also returns on a pause)."""
    async for _, event in runtime.hot.read(run_channel(run_id)):
        if event["event"] == "end":
            break
    return await runtime.engine.get("default", run_id)


async def test_a_failure_in_the_approval_wait_ends_the_run_in_error(runtime: Runtime) -> None:
    engine = runtime.engine
    run = await engine.submit(RunRequest(tenant_id="default", agent="payer", input={"amount": 5}))
    paused = await asyncio.wait_for(engine.wait("default", run.id), 30)
    assert paused.stop_reason == "awaiting_approval"
    (approval,) = await asyncio.to_thread(engine.approvals.for_run, "default", run.id)
    with runtime.db.engine.begin() as conn:  # the approval row can no longer be read
        conn.execute(
            text("UPDATE approvals SET arguments = '{broken' WHERE id = :id"), {"id": approval.id}
        )
    await runtime.durable.send(run.id, approval_topic(approval.id), {})  # wake the wait
    ended = await asyncio.wait_for(end_of(runtime, run.id), 30)
    assert ended.status == "error" and not ended.active
    assert ended.error is not None and ended.error["error"] == "JSONDecodeError"


class Ratio(BaseModel):
    value: float


@app.agent(name="unstorable")
async def unstorable(ctx: Context, input: Note) -> Ratio:
    return Ratio(value=float("nan"))  # PostgreSQL's JSON refuses NaN ("Token "NaN" is invalid")


async def test_an_outcome_the_store_refuses_still_ends_the_run_in_error(
    postgres_database: str, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=postgres_database,
        model="local",
        apps=[],
        sandbox_pool_size=0,
    )
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        run = await runtime.engine.submit(
            RunRequest(tenant_id="default", agent="unstorable", input={"text": "x"})
        )
        ended = await asyncio.wait_for(runtime.engine.wait("default", run.id), 30)
        assert (ended.status, ended.stop_reason, ended.output) == ("error", "internal_error", None)
        assert ended.error is not None
        assert ended.error["message"] == "the run's outcome could not be stored"
        assert not ended.active
    finally:
        await runtime.stop()
