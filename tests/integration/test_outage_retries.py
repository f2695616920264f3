"""Retrying a run's bookkeeping through a database outage never starves the shared thread pool."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg

from steward.store.outage import until_reachable
from tests.conftest import free_port


async def test_waiting_out_an_outage_leaves_the_thread_pool_free_between_attempts() -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    other_work_ran = threading.Event()
    attempts = 0

    def write_run_state() -> str:
        nonlocal attempts
        attempts += 1
        if not other_work_ran.is_set():
            psycopg.connect(dead, connect_timeout=2).close()  # refused: a real outage error
        return "written"

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))  # the pool a long outage fills
    retrying = asyncio.create_task(until_reachable(write_run_state))
    # Other work needing the same pool still gets a thread while the write keeps failing; a
    # retry loop that slept inside its worker thread would hold the only one until the end.
    await asyncio.wait_for(asyncio.to_thread(other_work_ran.set), 30)
    assert await asyncio.wait_for(retrying, 30) == "written"
    assert attempts >= 2
