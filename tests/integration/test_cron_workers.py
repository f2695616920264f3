"""A cron on `steward serve` with two `steward worker` processes on PostgreSQL: every tick
starts exactly one run, and ticks keep firing, once each, while a worker is killed and another
takes its place. The runs are normal runs of the thread, visible to `langgraph-sdk`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.integration.test_scale_out import Cluster

EVERY_SECOND = "* * * * * *"


@pytest.fixture
def cluster(tmp_path: Path, postgres_database: str) -> Iterator[Cluster]:
    running = Cluster(tmp_path, postgres_database)
    running.env["STEWARD_CRON_POLL_INTERVAL_S"] = "0.1"
    yield running
    running.stop()


async def _runs_on(client: Any, thread_id: str, at_least: int, what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs: list[dict[str, Any]] = await client.runs.list(thread_id, limit=1000)
        if len(runs) >= at_least:
            return runs
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_cron_fires_once_per_tick_across_two_workers_and_a_restart(
    cluster: Cluster,
) -> None:
    cluster.serve()
    first, second = cluster.worker(0), cluster.worker(1)
    client = get_client(url=cluster.url, api_key=cluster.key())
    try:
        thread = await client.threads.create()
        cron = await client.crons.create_for_thread(
            thread["thread_id"],
            "multistep",
            schedule=EVERY_SECOND,
            input={"steps": 1},
            multitask_strategy="enqueue",
        )
        before = await _runs_on(client, thread["thread_id"], 5, "five ticks on two workers")

        os.kill(first.pid, signal.SIGKILL)  # a worker dies; a new one joins
        first.wait(10)
        cluster.worker(2)
        await _runs_on(client, thread["thread_id"], len(before) + 5, "five more ticks")
        await client.crons.update(cron["cron_id"], enabled=False)
        runs = await client.runs.list(thread["thread_id"], limit=1000)
    finally:
        await client.aclose()
    assert second.poll() is None

    ticks = Counter(run["metadata"]["cron_tick"] for run in runs)
    assert {run["metadata"]["cron_id"] for run in runs} == {cron["cron_id"]}
    repeated = {tick: count for tick, count in ticks.items() if count > 1}
    assert repeated == {}, f"ticks fired more than once: {repeated}"
    assert len(ticks) == len(runs) >= 10
    # A worker executes the runs it starts itself: both workers won ticks, so they were
    # competing for the same rows all along.
    pids = {
        line["pid"] for line in cluster.ledger() if line["run_id"] in {r["run_id"] for r in runs}
    }
    assert {first.pid, second.pid} <= pids, (pids, first.pid, second.pid)
