"""A run survives its server being SIGKILLed mid-step: finished steps never run again."""

from __future__ import annotations

import time
from collections import Counter

import httpx

from tests.conftest import StewardProcess


def _wait_for(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_killed_mid_step_completes_after_restart_without_repeating_steps(
    fresh_server: StewardProcess,
) -> None:
    fresh_server.start()
    headers = {"x-api-key": fresh_server.create_key()}
    run = httpx.post(
        f"{fresh_server.url}/runs",
        json={"assistant_id": "multistep", "input": {"steps": 6, "sleep_s": 0.6}},
        headers=headers,
    ).json()

    # Kill while the third step is in flight: its ledger line is written, its sleep is not over.
    _wait_for(lambda: len(fresh_server.ledger_lines()) >= 3, 20, "three steps to start")
    fresh_server.kill()
    before = fresh_server.ledger_lines()
    in_flight = before[-1]

    fresh_server.start()
    url = f"{fresh_server.url}/threads/{run['thread_id']}/runs/{run['run_id']}"
    finished = _wait_for(
        lambda: (r := httpx.get(url, headers=headers).json())["status"] == "success" and r,
        30,
        "the recovered run to finish",
    )

    assert finished["output"] == {"results": [0, 1, 2, 3, 4, 5]}
    lines = [line for line in fresh_server.ledger_lines() if line["run_id"] == run["run_id"]]
    executions = Counter(line["index"] for line in lines)
    # Steps that finished before the kill ran once; only the step in flight ran again.
    for index in range(int(in_flight["index"])):  # type: ignore[call-overload]
        assert executions[index] == 1, executions
    assert executions[in_flight["index"]] == 2, executions
    for index in range(int(in_flight["index"]) + 1, 6):  # type: ignore[call-overload]
        assert executions[index] == 1, executions
    # ...and both of its executions carried the same idempotency key.
    keys = {line["key"] for line in lines if line["index"] == in_flight["index"]}
    assert keys == {f"{run['run_id']}:{int(in_flight['index']) + 1}"}  # type: ignore[call-overload]
    assert len({line["pid"] for line in lines}) == 2  # two processes did the work
    assert finished["usage"]["steps"] == 6
