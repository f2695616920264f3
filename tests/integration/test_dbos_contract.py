"""The private DBOS symbols `steward.durable.dbos_engine` relies on still behave as it expects.

`pyproject.toml` pins the DBOS version these were checked against; a new version must pass
this file before the pin moves. One test per private symbol, on a real DBOS over SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS
from dbos._dbos import _dbos_global_instance  # noqa: F401  (the import is part of the contract)

from steward.durable import dbos_engine
from steward.durable.dbos_engine import DBOSEngine, JsonObject


class Release:
    """Set by a test to let its blocked runs finish; one event per test's event loop."""

    event = asyncio.Event()


async def blocking_body(run_id: str, payload: JsonObject) -> JsonObject:
    await Release.event.wait()
    return {"status": "success", "run_id": run_id}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[DBOSEngine]:
    Release.event = asyncio.Event()
    durable = DBOSEngine(f"sqlite:///{tmp_path / 'durable.db'}", executor_id="contract-a")
    durable.set_run_body(blocking_body)
    await durable.launch(execute=True)
    yield durable
    Release.event.set()
    await durable.shutdown()


async def test_dbos_global_instance_is_the_launched_instance(engine: DBOSEngine) -> None:
    from dbos import _dbos

    instance = _dbos._dbos_global_instance
    assert instance is not None
    assert instance is dbos_engine._dbos_instance()
    assert isinstance(instance, DBOS)


async def test_active_workflows_set_lists_running_workflows_until_they_end(
    engine: DBOSEngine,
) -> None:
    run_id = str(uuid.uuid4())
    await engine.start(run_id, {})
    active = dbos_engine._dbos_instance()._active_workflows_set
    for _ in range(500):  # the workflow task registers itself once it starts
        if run_id in active.activeList():
            break
        await asyncio.sleep(0.01)
    assert run_id in active.activeList()
    Release.event.set()
    await dbos_engine._wait_for_outcomes(timeout_s=30)
    assert run_id not in active.activeList()
    status = await DBOS.get_workflow_status_async(run_id)
    assert status is not None and status.status == "SUCCESS"


async def test_recover_pending_workflows_returns_the_pending_runs_of_given_executors(
    engine: DBOSEngine,
) -> None:
    run_id = str(uuid.uuid4())
    await engine.start(run_id, {})  # pending under executor "contract-a" until released
    assert await asyncio.to_thread(engine.recover, ["someone-else"]) == 0
    recovered = await asyncio.to_thread(DBOS._recover_pending_workflows, ["contract-a"])
    assert [handle.get_workflow_id() for handle in recovered] == [run_id]
    Release.event.set()
    await dbos_engine._wait_for_outcomes(timeout_s=30)


async def test_each_execution_has_an_ownership_token_in_its_context_and_row(
    engine: DBOSEngine, tmp_path: Path
) -> None:
    """The step journal records a step only while `workflow_status.owner_xid` still holds the
    token of the execution that ran it, read from `get_local_dbos_context().owner_xid`; and
    recovery hands the run to a new execution under a new token."""
    seen: list[str] = []

    async def body(run_id: str, payload: JsonObject) -> JsonObject:
        seen.append(dbos_engine._owner_xid(run_id))
        await Release.event.wait()
        return {"status": "success"}

    engine.set_run_body(body)
    run_id = str(uuid.uuid4())
    await engine.start(run_id, {})
    for _ in range(500):
        if seen:
            break
        await asyncio.sleep(0.01)

    def row() -> tuple[str, str]:
        with sqlite3.connect(tmp_path / "durable.db") as conn:
            status, owner = conn.execute(
                "SELECT status, owner_xid FROM workflow_status WHERE workflow_uuid = ?", (run_id,)
            ).fetchone()
        return str(status), str(owner)

    assert row() == ("PENDING", seen[0])
    await asyncio.to_thread(DBOS._recover_pending_workflows, ["contract-a"])
    for _ in range(500):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(seen) == 2 and seen[1] != seen[0]
    assert row() == ("PENDING", seen[1])
    Release.event.set()
    await dbos_engine._wait_for_outcomes(timeout_s=30)


async def test_steps_recorded_by_dbos_run_step_before_an_upgrade_replay_in_the_journal(
    engine: DBOSEngine,
) -> None:
    """A run in flight across the upgrade to Steward's journal: the steps DBOS's `run_step`
    recorded (in `operation_outputs`) replay, in call order; the next step runs."""
    executions: list[str] = []
    results: list[list[JsonObject]] = []

    def effect(label: str) -> Any:
        async def run() -> JsonObject:
            executions.append(label)
            return {"ok": label}

        return run

    async def body(run_id: str, payload: JsonObject) -> JsonObject:
        if not results:  # the old version: DBOS records the steps, then the process "dies"
            results.append(
                [
                    await DBOS.run_step_async({"name": "tool a"}, effect("a")),
                    await DBOS.run_step_async({"name": "tool b"}, effect("b")),
                ]
            )
            await Release.event.wait()
            return {"status": "abandoned"}
        results.append([await engine.step(f"tool {x}", effect(x)) for x in ("a", "b", "c")])
        return {"status": "success"}

    engine.set_run_body(body)
    run_id = str(uuid.uuid4())
    await engine.start(run_id, {})
    for _ in range(500):
        if results:
            break
        await asyncio.sleep(0.01)
    await asyncio.to_thread(DBOS._recover_pending_workflows, ["contract-a"])
    for _ in range(500):
        if len(results) == 2:
            break
        await asyncio.sleep(0.01)
    assert results[1] == [{"ok": "a"}, {"ok": "b"}, {"ok": "c"}]
    assert executions == ["a", "b", "c"]  # a and b ran once, under the old version
    Release.event.set()
    await dbos_engine._wait_for_outcomes(timeout_s=30)
