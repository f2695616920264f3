"""The queue depth the worker autoscaler follows: `/metrics` on an API server counts the runs
waiting for a worker and the runs executing, database-wide, through real `steward serve`
and `steward worker` processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_scale_out import Cluster, _wait


@pytest.fixture(params=["sqlite", "postgresql"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url = request.getfixturevalue("postgres_database") if request.param == "postgresql" else None
    running = Cluster(tmp_path, url)
    yield running
    running.stop()


def gauges(cluster: Cluster, key: str) -> dict[str, float]:
    response = httpx.get(f"{cluster.url}/metrics", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    found = re.findall(r"^steward_(queue_depth|runs_running) (\S+)$", response.text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def test_metrics_count_runs_waiting_then_running_then_none(cluster: Cluster) -> None:
    cluster.serve()
    key = cluster.key()
    assert gauges(cluster, key) == {"queue_depth": 0.0, "runs_running": 0.0}
    runs = [
        httpx.post(
            f"{cluster.url}/runs",
            json={"assistant_id": "multistep", "input": {"steps": 12, "sleep_s": 0.25}},
            headers={"x-api-key": key},
        ).json()
        for _ in range(3)
    ]
    # No worker yet: all three wait.
    assert gauges(cluster, key) == {"queue_depth": 3.0, "runs_running": 0.0}
    cluster.worker(0)
    _wait(lambda: gauges(cluster, key)["runs_running"] >= 1, 60, "a run to be counted as running")

    def finished() -> bool:
        for run in runs:
            url = f"{cluster.url}/threads/{run['thread_id']}/runs/{run['run_id']}"
            if httpx.get(url, headers={"x-api-key": key}).json()["status"] != "success":
                return False
        return True

    _wait(finished, 120, "the runs to finish")
    assert gauges(cluster, key) == {"queue_depth": 0.0, "runs_running": 0.0}
