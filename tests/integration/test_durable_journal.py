"""Steward's step journal on each durable store: one row per step, written before the run goes on,
refused once the run is cancelled or handed to another execution, and replayed from one read."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from steward import Context, Steward
from steward.config import Settings
from steward.durable.journal import StepJournal
from steward.durable.steps import RunSteps
from steward.runs.engine import RunRequest
from steward.runtime import Runtime

app = Steward()
gate = threading.Event()  # released by the test: the `hold` tool's step then finishes
entered = threading.Event()  # set once `hold` runs
effects: list[str] = []


class Count(BaseModel):
    steps: int


class Total(BaseModel):
    total: int


@app.tool()
def add_one(value: int) -> int:
    """Return value + 1."""
    return value + 1


@app.tool()
def hold(label: str) -> str:
    """Block until the test releases the gate."""
    effects.append(label)
    entered.set()
    if not gate.wait(60):
        raise RuntimeError("the test never released the gate")
    return label


@app.agent(name="counter", max_steps=100, timeout_s=120)
async def counter(ctx: Context, input: Count) -> Total:
    value = 0
    for _ in range(input.steps):
        value = await ctx.tool("add_one", {"value": value})
    return Total(total=value)


@app.agent(name="holder", max_steps=10, timeout_s=120)
async def holder(ctx: Context, input: Count) -> Total:
    await ctx.tool("hold", {"label": "first"})
    await ctx.tool("hold", {"label": "second"})
    return Total(total=2)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("postgres_database") if request.param == "postgresql" else None
    return Settings(home=tmp_path / "home", database_url=url, model="local", apps=[])


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    gate.clear()
    entered.clear()
    effects.clear()
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        yield runtime
    finally:
        gate.set()
        await runtime.stop()


def durable_sql(settings: Settings, statement: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Run one statement on the durable database (`?` placeholders) and commit it."""
    url = settings.durable_database_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[-1]) as conn:
            return conn.execute(statement, args).fetchall()
    statement = statement.replace("?", "%s").replace("steward_steps", "dbos.steward_steps")
    statement = statement.replace("workflow_status", "dbos.workflow_status")
    with psycopg.connect(url) as conn:
        cursor = conn.execute(statement, args)
        return cursor.fetchall() if cursor.description else []


def journal_rows(settings: Settings, run_id: str) -> list[tuple[int, str, str]]:
    rows = durable_sql(
        settings,
        "SELECT seq, name, output FROM steward_steps WHERE run_id = ? ORDER BY seq",
        (run_id,),
    )
    return [(int(seq), name, output) for seq, name, output in rows]


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


async def test_every_step_is_one_row_in_call_order(runtime: Runtime, settings: Settings) -> None:
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="counter", input={"steps": 5})
    )
    finished = await runtime.engine.wait("default", run.id)
    assert finished.status == "success" and finished.output == {"total": 5}
    rows = journal_rows(settings, run.id)
    assert [seq for seq, _, _ in rows] == [1, 2, 3, 4, 5]
    assert [output for _, _, output in rows] == [
        f'{{"ok":{{"result":{n},"untrusted":true}}}}' for n in range(1, 6)
    ]


async def test_concurrent_runs_share_commits_and_lose_no_step(
    runtime: Runtime, settings: Settings
) -> None:
    runs = [
        await runtime.engine.submit(
            RunRequest(tenant_id="default", agent="counter", input={"steps": 6})
        )
        for _ in range(24)
    ]
    finished = await asyncio.gather(*(runtime.engine.wait("default", run.id) for run in runs))
    assert [run.output for run in finished] == [{"total": 6}] * 24
    for run in runs:
        assert [seq for seq, _, _ in journal_rows(settings, run.id)] == list(range(1, 7))


async def test_a_result_finished_after_a_hand_off_is_refused_and_the_execution_stops(
    runtime: Runtime, settings: Settings
) -> None:
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="holder", input={"steps": 0})
    )
    await until(entered.is_set, "the first step to start")
    # What recovery does when it hands the run to another execution: a new ownership token.
    durable_sql(
        settings,
        "UPDATE workflow_status SET owner_xid = ? WHERE workflow_uuid = ?",
        ("another-execution", run.id),
    )
    gate.set()
    await until(lambda: run.id not in runtime.engine._tasks, "the execution to stop")
    assert journal_rows(settings, run.id) == []
    assert effects == ["first"]  # the second step never started
    still = await runtime.engine.get("default", run.id)
    assert still.status == "running"  # left to the new owner, not ended by the fenced one


async def test_a_step_that_finishes_after_a_cancel_is_not_recorded(
    runtime: Runtime, settings: Settings
) -> None:
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="holder", input={"steps": 0})
    )
    await until(entered.is_set, "the first step to start")
    await runtime.durable.cancel(run.id)  # type: ignore[union-attr]
    gate.set()
    await until(lambda: run.id not in runtime.engine._tasks, "the execution to stop")
    assert journal_rows(settings, run.id) == []
    assert effects == ["first"]
    ended = await runtime.engine.get("default", run.id)
    assert (ended.status, ended.stop_reason) == ("interrupted", "cancelled")


async def test_an_execution_replays_recorded_steps_from_one_read(
    runtime: Runtime, settings: Settings
) -> None:
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="counter", input={"steps": 3})
    )
    await runtime.engine.wait("default", run.id)
    journal = StepJournal(settings.durable_database_url)
    journal.open()
    reads: list[str] = []
    original = journal.recorded

    async def counted(run_id: str) -> dict[int, str]:
        reads.append(run_id)
        return await original(run_id)

    journal.recorded = counted  # type: ignore[method-assign]
    try:
        steps = RunSteps(journal, run.id, owner="replaying")
        replayed = [await steps.replayed(steps.next_seq()) for _ in range(4)]
    finally:
        journal.close()
    assert reads == [run.id]
    assert [done for done, _ in replayed] == [True, True, True, False]
    assert [result for _, result in replayed[:3]] == [
        {"ok": {"result": 1, "untrusted": True}},
        {"ok": {"result": 2, "untrusted": True}},
        {"ok": {"result": 3, "untrusted": True}},
    ]
