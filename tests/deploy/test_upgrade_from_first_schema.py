"""A PostgreSQL database of the first released schema (migration 0001), holding what a
Steward of that version left behind — finished runs and their threads, a run accepted but
never started, a run waiting in the durable queue — is upgraded to head by `steward migrate`
while those runs are in flight. Then real `steward serve` and `steward worker` processes of
this version read the old data unchanged and finish the old runs, and the old threads take
new runs.

The old version's rows are written through the tables as migration 0001 created them
(reflected from the database, so no column of a later migration can be used), and its queued
run through the durable engine's client, as an API server enqueues one.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, inspect, select
from sqlalchemy.pool import NullPool

from steward.durable.dbos_engine import DBOSEngine, migrate_durable
from steward.store import migrate
from steward.store.database import normalise_url
from tests.conftest import ROOT, STEWARD
from tests.integration.test_scale_out import Cluster, _ready, _wait

SUPPORT = str(ROOT / "examples" / "support.py")
TENANT = "acme"
pytestmark = pytest.mark.postgres


def old_version_leaves_behind(url: str) -> dict[str, Any]:
    """What Steward at revision 0001 wrote: rows in 0001's columns, a run in the queue."""
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    tables = MetaData()
    tables.reflect(engine)
    runs, threads, tenants = (
        tables.tables["runs"],
        tables.tables["threads"],
        tables.tables["tenants"],
    )
    now = datetime.now(UTC)
    ids = {name: str(uuid.uuid4()) for name in ("done", "accepted", "queued")}
    thread_of = {name: str(uuid.uuid4()) for name in ids}
    done_output = {
        "answer": "According to lookup_order (order id 1): shipped",
        "tools_used": ["lookup_order"],
    }
    questions = {
        "done": "Where is my order 1?",
        "accepted": "Where is my order 7?",
        "queued": "Where is my order 9?",
    }
    with engine.begin() as db:
        db.execute(tenants.insert().values(id=TENANT, name=TENANT, created_at=now))
        for name, run_id in ids.items():
            finished = name == "done"
            db.execute(
                threads.insert().values(
                    tenant_id=TENANT,
                    id=thread_of[name],
                    status="idle" if finished else "busy",
                    metadata={"from": "0001"},
                    values=done_output if finished else {},
                    created_at=now,
                    updated_at=now,
                )
            )
            db.execute(
                runs.insert().values(
                    id=run_id,
                    tenant_id=TENANT,
                    thread_id=thread_of[name],
                    agent="support",
                    status="success" if finished else "pending",
                    stop_reason="completed" if finished else None,
                    input={"message": questions[name]},
                    output=done_output if finished else None,
                    metadata={"from": "0001"},
                    multitask_strategy="reject",
                    steps=2 if finished else 0,
                    input_tokens=40 if finished else 0,
                    output_tokens=12 if finished else 0,
                    cache_read_tokens=0,
                    cost_usd=0.0,
                    created_at=now,
                    updated_at=now,
                    started_at=now if finished else None,
                    ended_at=now if finished else None,
                )
            )
    engine.dispose()

    async def enqueue() -> None:
        client = DBOSEngine(url, executor_id="old-api")
        await client.launch(execute=False)
        try:
            payload = {
                "tenant_id": TENANT,
                "agent": "support",
                "input": {"message": questions["queued"]},
            }
            await client.enqueue(ids["queued"], payload)
        finally:
            await client.shutdown()

    migrate_durable(url)
    asyncio.run(enqueue())
    return {"ids": ids, "threads": thread_of, "done_output": done_output}


def revision(url: str) -> list[str]:
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    meta = MetaData()
    meta.reflect(engine, only=["alembic_version"])
    with engine.connect() as db:
        rows = db.execute(select(meta.tables["alembic_version"])).all()
    engine.dispose()
    return [row[0] for row in rows]


@pytest.fixture
def cluster(postgres_database: str, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path, postgres_database)
    yield running
    running.stop()


def test_upgrade_from_0001_with_runs_in_flight(postgres_database: str, cluster: Cluster) -> None:
    url = postgres_database
    migrate.upgrade(url, "0001")
    assert revision(url) == ["0001"]
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    columns = {c["name"] for c in inspect(engine).get_columns("runs")}
    engine.dispose()
    assert "active" not in columns and "webhook" not in columns  # really the old shape
    old = old_version_leaves_behind(url)

    done = subprocess.run(
        [STEWARD, "migrate"],
        cwd=ROOT,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert revision(url) == [migrate.HEAD_REVISION]

    serve = cluster.spawn("serve", SUPPORT, "--port", str(cluster.port), log="serve.log")
    _wait(lambda: _ready(cluster.url, serve), 90, "steward serve to start")
    log = cluster.home / "worker.log"
    cluster.spawn("worker", SUPPORT, "--slot", "0", log=log.name)
    _wait(lambda: b"executing runs" in log.read_bytes(), 90, "the worker to start")
    key = (
        subprocess.run(
            [STEWARD, "keys", "create", "--name", "after-upgrade", "--tenant", TENANT],
            cwd=ROOT,
            env=cluster.env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    headers = {"x-api-key": key}

    def get_run(name: str) -> dict[str, Any]:
        thread, run_id = old["threads"][name], old["ids"][name]
        response = httpx.get(f"{cluster.url}/threads/{thread}/runs/{run_id}", headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    # The old version's finished run and its thread read as they were written.
    finished = get_run("done")
    assert finished["status"] == "success"
    assert finished["metadata"] == {"from": "0001"}
    state = httpx.get(f"{cluster.url}/threads/{old['threads']['done']}/state", headers=headers)
    assert state.status_code == 200, state.text
    assert state.json()["values"] == old["done_output"]

    # The runs in flight at the upgrade finish on the new worker, with a real tool call.
    for name, order in (("accepted", "7"), ("queued", "9")):
        ended = _wait(
            lambda n=name: (r := get_run(n))["status"] not in ("pending", "running") and r,
            120,
            f"the {name} run to finish",
        )
        assert ended["status"] == "success", ended
        join = httpx.get(
            f"{cluster.url}/threads/{old['threads'][name]}/runs/{old['ids'][name]}/join",
            headers=headers,
            timeout=30,
        )
        assert join.status_code == 200, join.text
        assert join.json()["tools_used"] == ["lookup_order"]
        assert f"order id {order}" in join.json()["answer"]

    # Old threads, freed by runs of either version, take new runs.
    for name in ("done", "accepted"):
        response = httpx.post(
            f"{cluster.url}/threads/{old['threads'][name]}/runs/wait",
            json={"assistant_id": "support", "input": {"message": "Where is my order 3?"}},
            headers=headers,
            timeout=120,
        )
        assert response.status_code == 200, response.text
        assert "order id 3" in response.json()["answer"]


def test_the_durable_queue_identity_never_changes() -> None:
    # Runs queued by one version are taken by the next only if these stay (docs/upgrading.md).
    from inspect import signature

    from steward.durable import dbos_engine

    assert dbos_engine.QUEUE_NAME == "steward-runs"
    assert dbos_engine.WORKFLOW_NAME == "steward.run"
    default = signature(DBOSEngine).parameters["application_version"].default
    assert default == "steward-1"
