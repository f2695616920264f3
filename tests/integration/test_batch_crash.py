"""A batch on PostgreSQL worked by two `steward worker` processes behind `steward serve`; one
worker is SIGKILLed mid-way. Every item is done exactly once (one run per item, no second run
for any), the results come in input order, and progress is visible throughout."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.test_batches import results
from tests.integration.test_scale_out import Cluster

ITEMS = 300


@pytest.fixture
def cluster(tmp_path: Path, postgres_database: str) -> Iterator[Cluster]:
    running = Cluster(tmp_path, postgres_database)
    running.env["STEWARD_BATCH_POLL_INTERVAL_S"] = "0.05"
    running.env["STEWARD_BATCH_LEASE_S"] = "3"
    yield running
    running.stop()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_batch_survives_a_killed_worker_with_every_item_done_once(
    cluster: Cluster, postgres_database: str
) -> None:
    cluster.serve()
    first, _second = cluster.worker(0), cluster.worker(1)
    items = [{"steps": 1, "sleep_s": 0.02} for _ in range(ITEMS)]
    seen: list[int] = []
    with httpx.Client(base_url=cluster.url, headers={"x-api-key": cluster.key()}) as client:
        created = client.post(
            "/v1/batches", json={"agent": "multistep", "items": items, "concurrency": 16}
        )
        assert created.status_code == 201, created.text
        batch_id = created.json()["batch_id"]
        killed = False
        deadline = time.monotonic() + 180
        while True:
            view = client.get(f"/v1/batches/{batch_id}").json()
            seen.append(view["done"])
            if not killed and view["done"] >= ITEMS // 3:
                first.send_signal(signal.SIGKILL)
                first.wait(10)
                killed_at = view["done"]
                killed = True
            if view["status"] == "completed":
                break
            assert time.monotonic() < deadline, f"batch stuck at {view}"
            time.sleep(0.05)
        rows = results(client, batch_id)
    assert killed and killed_at < ITEMS
    # Progress moved in steps the client could see, never backwards, on both sides of the kill.
    assert seen == sorted(seen)
    assert any(0 < done < killed_at for done in seen)
    assert any(killed_at < done < ITEMS for done in seen)
    assert view["counts"]["succeeded"] == ITEMS and view["done"] == ITEMS
    assert [row["index"] for row in rows] == list(range(ITEMS))
    assert all(row["status"] == "succeeded" for row in rows)
    assert all(row["output"] == {"results": [0]} for row in rows)
    run_ids = {row["run_id"] for row in rows}
    assert len(run_ids) == ITEMS
    # Exactly once: the runs the batch made are exactly the results' runs, one per item.
    with psycopg.connect(postgres_database) as conn:
        made = conn.execute(
            "SELECT id FROM runs WHERE metadata::jsonb->>'batch_id' = %s", (batch_id,)
        ).fetchall()
    assert sorted(str(row[0]) for row in made) == sorted(run_ids)
    ledger_runs = {str(line["run_id"]) for line in cluster.ledger()}
    assert ledger_runs == run_ids
