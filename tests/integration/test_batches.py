"""Batch jobs through a real `steward dev` server, on SQLite and on PostgreSQL: one run per
item, results in input order, retries, pause/resume/cancel, tenant scoping, precise 4xx."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import STEWARD, StewardProcess, make_process

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def steward(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StewardProcess]:
    extra = {"STEWARD_BATCH_POLL_INTERVAL_S": "0.05"}
    if request.param == "postgres":
        extra["STEWARD_DATABASE_URL"] = request.getfixturevalue("postgres_database")
    process = make_process(tmp_path, **extra)
    process.start()
    yield process
    process.stop()


def _client(process: StewardProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=process.url, headers={"x-api-key": key}, timeout=30)


def wait_for(client: httpx.Client, batch_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] in statuses:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} never reached {statuses}: {batch}")


def results(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/batches/{batch_id}/results")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_batch_runs_every_item_once_and_answers_in_input_order(
    steward: StewardProcess,
) -> None:
    key = steward.create_key()
    lines = "\n".join(json.dumps({"steps": 1 + i % 3}) for i in range(40))
    with _client(steward, key) as client:
        created = client.post(
            "/v1/batches", json={"agent": "multistep", "jsonl": lines, "concurrency": 5}
        )
        assert created.status_code == 201, created.text
        batch_id = created.json()["batch_id"]
        assert created.headers["location"] == f"/v1/batches/{batch_id}"
        done = wait_for(client, batch_id, "completed")
        assert done["done"] == done["total"] == 40
        assert done["counts"]["succeeded"] == 40
        rows = results(client, batch_id)
        assert [row["index"] for row in rows] == list(range(40))
        for i, row in enumerate(rows):
            assert row["status"] == "succeeded"
            assert row["attempts"] == 1
            assert row["output"] == {"results": list(range(1 + i % 3))}
        run_ids = [row["run_id"] for row in rows]
        assert len(set(run_ids)) == 40
    # The ledger counts real tool executions: exactly the items' steps, each run's once.
    steps = Counter(str(line["run_id"]) for line in steward.ledger_lines())
    assert sorted(steps) == sorted(run_ids)
    assert sum(steps.values()) == sum(1 + i % 3 for i in range(40))


def test_failed_items_are_retried_then_failed_and_csv_items_run(steward: StewardProcess) -> None:
    key = steward.create_key()
    with _client(steward, key) as client:
        broken = client.post(
            "/v1/batches",
            json={"agent": "broken", "items": [{"steps": 1}] * 3, "max_attempts": 2},
        ).json()
        csv_batch = client.post(
            "/v1/batches",
            json={"agent": "multistep", "csv": "steps,sleep_s\n2,0\n1,0\n", "rate_per_s": 50},
        ).json()
        failed = wait_for(client, broken["batch_id"], "completed")
        assert failed["counts"]["failed"] == 3
        rows = results(client, broken["batch_id"])
        assert [row["attempts"] for row in rows] == [2, 2, 2]
        assert all("the agent's own bug" in row["error"] for row in rows)
        wait_for(client, csv_batch["batch_id"], "completed")
        outputs = [row["output"] for row in results(client, csv_batch["batch_id"])]
        assert outputs == [{"results": [0, 1]}, {"results": [0]}]
    assert len([line for line in steward.ledger_lines() if line["index"] == 0]) == 6 + 2


def test_pause_resume_and_cancel(steward: StewardProcess) -> None:
    key = steward.create_key()
    items = [{"steps": 1, "sleep_s": 0.2}] * 30
    with _client(steward, key) as client:
        batch = client.post(
            "/v1/batches", json={"agent": "multistep", "items": items, "concurrency": 2}
        ).json()
        paused = client.post(f"/v1/batches/{batch['batch_id']}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        # Paused: what was in flight finishes, nothing new starts.
        deadline = time.monotonic() + 60
        while True:
            view = client.get(f"/v1/batches/{batch['batch_id']}").json()
            if view["counts"]["claimed"] + view["counts"]["submitted"] == 0:
                break
            assert time.monotonic() < deadline, view
            time.sleep(0.1)
        time.sleep(0.5)
        still = client.get(f"/v1/batches/{batch['batch_id']}").json()
        assert still["done"] == view["done"] < 30
        assert client.post(f"/v1/batches/{batch['batch_id']}/pause").json()["status"] == "paused"
        again = client.post(f"/v1/batches/{batch['batch_id']}/resume")
        assert again.json()["status"] == "running"
        deadline = time.monotonic() + 60
        while client.get(f"/v1/batches/{batch['batch_id']}").json()["done"] <= view["done"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cancelled = client.post(f"/v1/batches/{batch['batch_id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        rows = results(client, batch["batch_id"])
        assert {row["status"] for row in rows} <= {"succeeded", "cancelled"}
        assert any(row["status"] == "cancelled" for row in rows)
        resumed = client.post(f"/v1/batches/{batch['batch_id']}/resume")
        assert resumed.status_code == 409
        assert resumed.headers["content-type"] == "application/problem+json"


def test_bad_input_is_a_precise_problem_and_batches_are_tenant_scoped(
    steward: StewardProcess,
) -> None:
    key = steward.create_key()
    other = steward.create_key("other", tenant="other")
    with _client(steward, key) as client:
        cases = [
            ({"agent": "multistep"}, 422, "exactly one of"),
            ({"agent": "multistep", "items": []}, 422, "no items"),
            ({"agent": "multistep", "jsonl": '{"steps": 1}\n{oops'}, 422, "line 2"),
            ({"agent": "multistep", "csv": "steps\n1,2\n"}, 422, "row 2"),
            ({"agent": "multistep", "items": [{"steps": 1}, {"steps": 0}]}, 422, "item 1"),
            ({"agent": "nobody", "items": [{}]}, 404, "nobody"),
            ({"agent": "multistep", "items": [{}], "concurrency": 0}, 422, "concurrency"),
        ]
        for body, status, words in cases:
            answer = client.post("/v1/batches", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert words in answer.text, (words, answer.text)
        mine = client.post("/v1/batches", json={"agent": "multistep", "items": [{}]}).json()
        assert client.get("/v1/batches/nope").status_code == 404
    with _client(steward, other) as client:
        assert client.get(f"/v1/batches/{mine['batch_id']}").status_code == 404
        assert client.get(f"/v1/batches/{mine['batch_id']}/results").status_code == 404
        assert client.post(f"/v1/batches/{mine['batch_id']}/cancel").status_code == 404
        assert client.get("/v1/batches").json() == []


def test_the_cli_runs_a_csv_file_and_writes_results_in_order(
    steward: StewardProcess, tmp_path: Path
) -> None:
    key = steward.create_key()
    data = tmp_path / "items.csv"
    data.write_text("steps,sleep_s\n" + "".join(f"{1 + i % 2},0\n" for i in range(12)))
    out = tmp_path / "results.jsonl"
    args = ["batch", "run", str(data), "--agent", "multistep", "--url", steward.url]
    steward.cli(*args, "--key", key, "--concurrency", "3", "--out", str(out), "--interval", "0.1")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(12))
    assert [row["output"] for row in rows] == [
        {"results": list(range(1 + i % 2))} for i in range(12)
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"steps": 0}\n')
    failed = subprocess.run(
        [STEWARD, "batch", "run", str(bad), "--agent", "multistep", "--url", steward.url],
        env={**steward.env, "STEWARD_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert "422" in failed.stderr and "item 0" in failed.stderr
