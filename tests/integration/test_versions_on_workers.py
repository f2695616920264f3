"""Any worker runs any deployed version side by side, on PostgreSQL: an API server and two
workers all started on a third copy of the code (`v0`) execute runs of versions 1 and 2 at the
same time, each run on the version it started on, none lost, while the stable version changes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, STEWARD
from tests.e2e.test_deploy_versions import write_app
from tests.integration.test_scale_out import Cluster, _ready, _wait


@pytest.fixture
def cluster(postgres_database: str, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path, postgres_database)
    yield running
    running.stop()


def cli(cluster: Cluster, *args: str) -> str:
    done = subprocess.run(
        [STEWARD, *args], cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def settled(client: httpx.Client, run_id: str) -> dict[str, Any]:
    while True:
        run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        if run["status"] not in ("pending", "running"):
            return run
        time.sleep(0.05)


def test_two_workers_run_two_versions_side_by_side(cluster: Cluster, tmp_path: Path) -> None:
    served = str(write_app(tmp_path, "v0"))
    proc = cluster.spawn("serve", served, "--port", str(cluster.port), log="serve.log")
    _wait(lambda: _ready(cluster.url, proc), 60, "steward serve to start")
    for slot in (0, 1):
        log = cluster.home / f"worker{slot}.log"
        cluster.spawn("worker", served, "--slot", str(slot), log=log.name)
        _wait(lambda log=log: b"executing runs" in log.read_bytes(), 90, "a worker to start")
    cli(cluster, "deploy", "--app", str(write_app(tmp_path, "v1")))
    cli(cluster, "deploy", "--app", str(write_app(tmp_path, "v2", steps=6)))
    cli(cluster, "rollout", "promote", "flow", "1", "--force", "--reason", "test")

    release = tmp_path / "release"
    headers = {"x-api-key": cluster.key()}
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=30) as client:

        def start(metadata: dict[str, Any] | None = None) -> str:
            body = {"assistant_id": "flow", "input": {"release": str(release)}}
            answer = client.post("/runs", json={**body, "metadata": metadata or {}})
            assert answer.status_code == 200, answer.text
            return str(answer.json()["run_id"])

        on_stable = [start() for _ in range(4)]
        pinned = [start({"steward.agent_version": 2}) for _ in range(4)]
        cli(cluster, "rollout", "promote", "flow", "2", "--force", "--reason", "test")
        after = [start() for _ in range(4)]
        release.touch()
        outputs = {
            name: [settled(client, run_id)["output"] for run_id in runs]
            for name, runs in (("stable", on_stable), ("pinned", pinned), ("after", after))
        }
    assert outputs == {
        "stable": [{"answer": "v1"}] * 4,
        "pinned": [{"answer": "v2"}] * 4,
        "after": [{"answer": "v2"}] * 4,
    }
