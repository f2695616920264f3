"""The kill test: `steward worker` processes SIGKILLed at random while they execute multi-step runs.

An API server (`steward serve`) accepts the runs; a driver kills a random ready worker every few
hundred milliseconds and restarts it (every `--leave-dead-every`-th one only after it went stale,
so a sweeper on another worker must recover its runs). Each run's tool appends to a ledger with a
unique idempotency key and logs every execution with its worker and pid. Last line:
`runs=… lost=… duplicates=… overlaps=… max_recovery_s=…` and more figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.apps.ledger_app import create_ledger, executions, ledger  # noqa: E402

STEWARD = str(Path(sys.executable).with_name("steward"))
APP = str(ROOT / "benchmarks" / "apps" / "ledger_app.py")
TERMINAL = ("success", "error", "timeout", "interrupted", "limit_exceeded")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Kill:
    pid: int
    at: float
    left_dead: bool


@dataclass
class WorkerProcess:
    slot: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    ready_at: float | None = None
    pids: list[int] = field(default_factory=list)
    log_offset: int = 0

    def start(self) -> None:
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [STEWARD, "worker", APP, "--slot", str(self.slot)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pids.append(self.proc.pid)
        self.ready_at = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int:
        assert self.proc is not None
        pid = self.proc.pid
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return pid

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class Killer(threading.Thread):
    """Kills a random ready worker every `interval` seconds and starts it again."""

    def __init__(self, workers: list[WorkerProcess], args: argparse.Namespace) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.args = args
        self.kills: list[Kill] = []
        self.done = threading.Event()
        self.rng = random.Random(args.seed)
        self.revive_at: dict[int, float] = {}

    def run(self) -> None:
        while not self.done.wait(self.rng.uniform(*self.args.kill_interval)):
            now = time.time()
            for worker in self.workers:
                if worker.ready_at is None and worker.alive() and _says_ready(worker):
                    worker.ready_at = now
                if not worker.alive() and self.revive_at.get(worker.slot, 0) <= now:
                    worker.start()
            # A worker must have been up a moment, or on a loaded machine none ever gets to work.
            ready = [
                w
                for w in self.workers
                if w.alive() and w.ready_at is not None and now - w.ready_at >= self.args.min_uptime
            ]
            if not ready:
                continue
            victim = self.rng.choice(ready)
            leave_dead = bool(self.args.leave_dead_every) and (
                (len(self.kills) + 1) % self.args.leave_dead_every == 0
            )
            pid = victim.kill()
            self.kills.append(Kill(pid, time.time(), leave_dead))
            # Left dead past the stale time, its runs can only come back through a sweeper.
            delay = self.args.stale * 1.5 if leave_dead else 0.0
            self.revive_at[victim.slot] = time.time() + delay
            if not leave_dead:
                victim.start()


def _says_ready(worker: WorkerProcess) -> bool:
    # `steward worker` prints this line once it has claimed its id and launched.
    with worker.log.open("rb") as log:
        log.seek(worker.log_offset)
        return b"executing runs" in log.read()


def make_database(args: argparse.Namespace, home: Path) -> tuple[str, str, str | None]:
    """(steward database URL, ledger URL, name of a PostgreSQL database to drop afterwards)."""
    if args.backend == "sqlite":
        return f"sqlite:///{home / 'steward.db'}", f"sqlite:///{home / 'ledger.db'}", None
    name = f"steward_kill_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.postgres_url.rsplit("/", 1)[0] + f"/{name}"
    return url, url, name


async def submit_runs(url: str, key: str, args: argparse.Namespace) -> list[str]:
    accepted: list[str] = []
    body = {"assistant_id": "ledger", "input": {"steps": args.steps, "work_s": args.work_ms / 1000}}
    semaphore = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}, timeout=60) as client:

        async def one() -> None:
            async with semaphore:
                for _ in range(20):
                    response = await client.post("/runs", json=body)
                    if response.status_code < 300:
                        accepted.append(response.json()["run_id"])
                        return
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(one() for _ in range(args.runs)))
    return accepted


def wait_for_runs(db: sa.Engine, run_ids: list[str], timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    wanted = set(run_ids)
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        with db.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, status FROM runs")).all()
            failed = conn.execute(sa.text("SELECT id, error FROM runs WHERE status = 'error'"))
            for run_id, error in failed:
                if run_id not in statuses:
                    print(f"run {run_id} failed: {error}", flush=True)
        statuses = {run_id: status for run_id, status in rows if run_id in wanted}
        finished = sum(1 for s in statuses.values() if s in TERMINAL)
        if finished == len(wanted):
            break
        time.sleep(0.5)
    return statuses


def analyse(
    ledger_db: sa.Engine, statuses: dict[str, str], kills: list[Kill], steps: int
) -> dict[str, Any]:
    with ledger_db.connect() as conn:
        effects = conn.execute(sa.select(ledger.c.run_id, ledger.c.step)).all()
        runs_log = conn.execute(
            sa.select(
                executions.c.run_id,
                executions.c.executor,
                executions.c.pid,
                executions.c.started_at,
                executions.c.ended_at,
            ).order_by(executions.c.started_at)
        ).all()
    per_step: dict[tuple[str, int], int] = defaultdict(int)
    for run_id, step in effects:
        per_step[(run_id, step)] += 1
    duplicates = sum(count - 1 for count in per_step.values() if count > 1)
    successful = [run_id for run_id, status in statuses.items() if status == "success"]
    missing_effects = sum(
        1 for run_id in successful for step in range(steps) if (run_id, step) not in per_step
    )
    by_run: dict[str, list[Any]] = defaultdict(list)
    for row in runs_log:
        by_run[row.run_id].append(row)
    overlaps = sum(1 for rows in by_run.values() if _interleaved(rows))
    killed_at = {kill.pid: kill.at for kill in kills}
    recovery: dict[int, float] = {}
    for rows in by_run.values():
        for before, after in itertools.pairwise(rows):
            at = killed_at.get(before.pid)
            if before.pid != after.pid and at is not None and at >= before.started_at:
                gap = after.started_at - at
                recovery[before.pid] = max(recovery.get(before.pid, 0.0), gap)
    return {
        "duplicates": duplicates,
        "missing_effects": missing_effects,
        "overlaps": overlaps,
        "replays": len(runs_log) - len(effects),
        "max_recovery_s": max(recovery.values(), default=0.0),
        "mean_recovery_s": sum(recovery.values()) / len(recovery) if recovery else 0.0,
    }


def _interleaved(rows: list[Any]) -> bool:
    """Whether two processes' spans of work on one run intersect."""
    spans: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        end = row.ended_at if row.ended_at is not None else row.started_at
        span = spans.setdefault((row.executor, row.pid), [row.started_at, end])
        span[0] = min(span[0], row.started_at)
        span[1] = max(span[1], end)
    ordered = sorted(spans.values())
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))


def main() -> None:
    args = parse_args()
    home = Path(tempfile.mkdtemp(prefix="steward-kill-"))
    url, ledger_url, drop = make_database(args, home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(
        STEWARD_HOME=str(home),
        STEWARD_DATABASE_URL=url,
        STEWARD_LEDGER_URL=ledger_url,
        STEWARD_HEARTBEAT_INTERVAL_S=str(args.heartbeat),
        STEWARD_WORKER_STALE_AFTER_S=str(args.stale),
        STEWARD_WORKER_CONCURRENCY=str(args.concurrency),
        STEWARD_MODEL="local",
        PYTHONUNBUFFERED="1",
    )
    server: subprocess.Popen[bytes] | None = None
    workers = [
        WorkerProcess(slot, {**env, "STEWARD_WORKER_SLOT": str(slot)}, home / f"worker{slot}.log")
        for slot in range(args.workers)
    ]
    killer = Killer(workers, args)
    started = time.monotonic()
    try:
        subprocess.run([STEWARD, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
        create_ledger(ledger_url)
        key = (
            subprocess.run(
                [STEWARD, "keys", "create", "--name", "kill"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        port = free_port()
        with (home / "serve.log").open("ab") as log:
            server = subprocess.Popen(
                [STEWARD, "serve", APP, "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        api = f"http://127.0.0.1:{port}"
        _wait_ready(api, server, home / "serve.log")
        for worker in workers:
            worker.start()
        killer.start()
        accepted = asyncio.run(submit_runs(api, key, args))
        print(f"accepted {len(accepted)} of {args.runs} runs", flush=True)
        steward_db = sa.create_engine(_sa_url(url))
        statuses = wait_for_runs(steward_db, accepted, args.timeout)
        killer.done.set()
        killer.join()
        figures = analyse(sa.create_engine(_sa_url(ledger_url)), statuses, killer.kills, args.steps)
        with steward_db.connect() as conn:
            query = "SELECT count(*) FROM workers WHERE swept_by IS NOT NULL"
            swept = int(conn.execute(sa.text(query)).scalar_one())
        steward_db.dispose()
    finally:
        killer.done.set()
        for worker in workers:
            worker.stop()
        if server is not None:
            server.terminate()
            server.wait(15)
    lost = len(accepted) - sum(1 for s in statuses.values() if s == "success")
    counts: dict[str, int] = defaultdict(int)
    for status in statuses.values():
        counts[status] += 1
    print(f"statuses {dict(counts)}; logs in {home}")
    if drop and not args.keep:
        with psycopg.connect(args.postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{drop}" WITH (FORCE)')
    print(
        f"runs={len(accepted)} lost={lost + (args.runs - len(accepted))} "
        f"duplicates={figures['duplicates']} overlaps={figures['overlaps']} "
        f"max_recovery_s={figures['max_recovery_s']:.2f} "
        f"mean_recovery_s={figures['mean_recovery_s']:.2f} kills={len(killer.kills)} "
        f"left_dead={sum(k.left_dead for k in killer.kills)} swept_workers={swept} "
        f"replays={figures['replays']} missing_effects={figures['missing_effects']} "
        f"backend={args.backend} workers={args.workers} "
        f"elapsed_s={time.monotonic() - started:.1f}"
    )


def _sa_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql") else url


def _wait_ready(api: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"steward serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("steward serve did not become ready")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="tool steps per run")
    parser.add_argument("--work-ms", type=float, default=20, help="work inside each step")
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL of the PostgreSQL server; a fresh database is created on it",
    )
    parser.add_argument(
        "--kill-interval", type=float, nargs=2, default=(0.3, 0.7), metavar=("MIN", "MAX")
    )
    parser.add_argument("--leave-dead-every", type=int, default=5)
    parser.add_argument(
        "--min-uptime", type=float, default=2.0, help="seconds a worker runs before it may die"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="runs per worker at once")
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--stale", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    return parser.parse_args()


if __name__ == "__main__":
    main()
