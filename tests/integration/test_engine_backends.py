"""The run engine in-process on each durable store: SQLite (embedded) and PostgreSQL.

One suite, parametrized over backends, so both keep the same behaviour.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from steward.config import Settings
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from tests.apps.testing_app import app as testing_app


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("STEWARD_TEST_LEDGER", str(tmp_path / "ledger.jsonl"))
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
    return Settings(home=tmp_path / "home", database_url=url, model="local", apps=[])


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, testing_app, execute=True)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_multistep_run_completes_and_records_totals(runtime: Runtime) -> None:
    runtime.keys.create("t", tenant_id="default")
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="multistep", input={"steps": 4})
    )
    finished = await runtime.engine.wait("default", run.id)
    assert finished.status == "success"
    assert finished.output == {"results": [0, 1, 2, 3]}
    assert finished.steps == 4
    assert finished.stop_reason == "completed"


async def test_step_cap_ends_run_with_limit_status(runtime: Runtime) -> None:
    runtime.keys.create("t", tenant_id="default")
    run = await runtime.engine.submit(RunRequest(tenant_id="default", agent="runaway", input={}))
    finished = await runtime.engine.wait("default", run.id)
    assert (finished.status, finished.stop_reason) == ("limit_exceeded", "max_steps")
    assert finished.steps == 5
    assert finished.error is not None and "max_steps=5" in finished.error["message"]


async def test_runs_are_invisible_to_other_tenants(runtime: Runtime) -> None:
    runtime.keys.create("a", tenant_id="default")
    runtime.keys.create("b", tenant_id="other")
    run = await runtime.engine.submit(RunRequest(tenant_id="default", agent="multistep", input={}))
    await runtime.engine.wait("default", run.id)
    assert runtime.engine.store.get_run("other", run.id) is None
    assert runtime.engine.store.list_runs("other") == []
