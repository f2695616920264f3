"""Separate `steward serve` and `steward worker` processes on SQLite and PostgreSQL.

Workers SIGKILLed at random lose no run and repeat no effect (the kill test, small); a worker
that stalls has its runs recovered by another worker's sweeper and is fenced when it wakes up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, STEWARD, free_port

TESTING_APP = str(ROOT / "tests" / "apps" / "testing_app.py")


def _last_line_figures(output: str) -> dict[str, str]:
    last = output.strip().splitlines()[-1]
    return dict(pair.split("=", 1) for pair in last.split())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_kill_test_loses_no_run_and_repeats_no_effect(backend: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "kill_test.py"),
            f"--backend={backend}",
            "--runs=40",
            "--workers=2",
            "--steps=4",
            # Runs that outlast a worker's first second (--min-uptime) at any machine speed: on
            # a quiet machine the default 20 ms steps finished every run before a kill was due.
            "--work-ms=250",
            "--concurrency=4",
            "--leave-dead-every=3",
            "--stale=3",
            "--min-uptime=1",
            "--seed=7",
            "--timeout=240",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = _last_line_figures(done.stdout)
    assert figures["runs"] == "40"
    assert (figures["lost"], figures["duplicates"], figures["overlaps"]) == ("0", "0", "0")
    assert figures["missing_effects"] == "0"
    assert int(figures["kills"]) >= 1, done.stdout


class Cluster:
    """`steward serve` plus workers sharing one store, with short heartbeats."""

    def __init__(self, home: Path, database_url: str | None) -> None:
        self.home = home
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
        self.env.update(
            STEWARD_HOME=str(home),
            STEWARD_TEST_LEDGER=str(home / "ledger.jsonl"),
            STEWARD_MODEL="local",
            STEWARD_HEARTBEAT_INTERVAL_S="0.3",
            STEWARD_WORKER_STALE_AFTER_S="3",
            PYTHONUNBUFFERED="1",
        )
        if database_url:
            self.env["STEWARD_DATABASE_URL"] = database_url
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.home / log).open("ab") as out:
            proc = subprocess.Popen(
                [STEWARD, *args], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def serve(self) -> None:
        proc = self.spawn("serve", TESTING_APP, "--port", str(self.port), log="serve.log")
        _wait(lambda: _ready(self.url, proc), 60, "steward serve to start")

    def worker(self, slot: int) -> subprocess.Popen[bytes]:
        log = self.home / f"worker{slot}.log"
        proc = self.spawn("worker", TESTING_APP, "--slot", str(slot), log=log.name)
        _wait(lambda: b"executing runs" in log.read_bytes(), 90, f"worker {slot} to start")
        return proc

    def key(self) -> str:
        done = subprocess.run(
            [STEWARD, "keys", "create", "--name", "t"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    def ledger(self) -> list[dict[str, object]]:
        import json

        path = self.home / "ledger.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise RuntimeError("steward serve exited")
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else None
    running = Cluster(tmp_path, url)
    yield running
    running.stop()


def test_stalled_worker_runs_move_to_another_worker_and_the_stalled_one_is_fenced(
    cluster: Cluster,
) -> None:
    cluster.serve()
    headers = {"x-api-key": cluster.key()}
    workers = {proc.pid: proc for proc in (cluster.worker(0), cluster.worker(1))}
    runs = [
        httpx.post(
            f"{cluster.url}/runs",
            json={"assistant_id": "multistep", "input": {"steps": 8, "sleep_s": 0.5}},
            headers=headers,
        ).json()
        for _ in range(3)
    ]
    first = _wait(
        lambda: next((ln for ln in cluster.ledger() if ln["run_id"] == runs[0]["run_id"]), None),
        60,
        "a worker to take the first run",
    )
    stalled = workers.pop(int(first["pid"]))  # type: ignore[call-overload]
    (rescuer,) = workers.values()
    # SIGSTOP: the worker neither dies nor beats; to the others it looks dead on another host.
    os.kill(stalled.pid, signal.SIGSTOP)
    stopped_at = time.time()

    def finished() -> bool:
        for run in runs:
            url = f"{cluster.url}/threads/{run['thread_id']}/runs/{run['run_id']}"
            if httpx.get(url, headers=headers).json()["status"] != "success":
                return False
        return True

    _wait(finished, 90, "the stalled worker's runs to finish elsewhere")
    os.kill(stalled.pid, signal.SIGCONT)
    # Woken, it finds its lease gone and exits before starting another step.
    assert stalled.wait(30) == 75
    assert rescuer.poll() is None

    ids = {run["run_id"] for run in runs}
    lines = [line for line in cluster.ledger() if line["run_id"] in ids]
    late = [line for line in lines if line["pid"] == stalled.pid and line["t"] > stopped_at]
    assert late == []
    moved = 0
    for run_id in ids:
        executions = Counter(line["index"] for line in lines if line["run_id"] == run_id)
        assert sorted(executions) == list(range(8))
        # Only the step in flight at the stall may run twice (same idempotency key).
        assert sum(count - 1 for count in executions.values()) <= 1, executions
        pids = [line["pid"] for line in lines if line["run_id"] == run_id]
        moved += pids[0] == stalled.pid and pids[-1] == rescuer.pid
    assert moved >= 1  # at least the first run was rescued mid-way
