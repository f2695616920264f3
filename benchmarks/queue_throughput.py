"""Runs per second from enqueue to completion on PostgreSQL, with 1, 2 and 4 `steward worker`s.

The baseline, measured on the same PostgreSQL in the same run, is the raw queue: one INSERT per
job, and as many consumers as workers each claiming with SELECT … FOR UPDATE SKIP LOCKED and
marking done with an UPDATE. The ratio is what the durable engine costs. Last line: key=value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
STEWARD = str(Path(sys.executable).with_name("steward"))
APP = str(ROOT / "benchmarks" / "apps" / "noop_app.py")


def raw_rate(url: str, jobs: int, consumers: int) -> float:
    """Jobs per second through INSERT + SELECT … FOR UPDATE SKIP LOCKED + UPDATE."""
    table = f"raw_queue_{consumers}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (id bigserial PRIMARY KEY, status text NOT NULL, "
            "payload jsonb NOT NULL, claimed_by text)"
        )
    done = threading.Event()
    finished = [0]
    lock = threading.Lock()

    def consume(name: str) -> None:
        with psycopg.connect(url) as conn:
            while not done.is_set():
                with conn.transaction():
                    row = conn.execute(
                        f"SELECT id FROM {table} WHERE status = 'queued' ORDER BY id "
                        "LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ).fetchone()
                    if row is not None:
                        conn.execute(
                            f"UPDATE {table} SET status = 'done', claimed_by = %s WHERE id = %s",
                            (name, row[0]),
                        )
                if row is None:
                    time.sleep(0.001)
                    continue
                with lock:
                    finished[0] += 1
                    if finished[0] >= jobs:
                        done.set()

    threads = [threading.Thread(target=consume, args=(f"c{i}",)) for i in range(consumers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(jobs):
            conn.execute(
                f"INSERT INTO {table} (status, payload) VALUES ('queued', %s)", ('{"steps": 3}',)
            )
    for thread in threads:
        thread.join()
    return jobs / (time.perf_counter() - started)


def start_workers(env: dict[str, str], count: int, home: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    logs = []
    for slot in range(count):
        log = home / f"worker{slot}.log"
        logs.append(log)
        with log.open("ab") as out:
            procs.append(
                subprocess.Popen(
                    [STEWARD, "worker", APP, "--slot", str(slot)],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if all(b"executing runs" in log.read_bytes() for log in logs):
            return procs
        if any(proc.poll() is not None for proc in procs):
            break
        time.sleep(0.2)
    raise RuntimeError(f"workers did not start; see {home}")


async def engine_rate(settings_env: dict[str, str], runs: int) -> float:
    """Enqueue `runs` no-op runs through an API-only runtime; time until all have ended."""
    from benchmarks.apps.noop_app import app

    from steward.config import Settings
    from steward.runs.engine import RunRequest
    from steward.runtime import Runtime

    settings = Settings(
        home=Path(settings_env["STEWARD_HOME"]), database_url=settings_env["STEWARD_DATABASE_URL"]
    )
    runtime = Runtime.build(settings, app, execute=False)
    await runtime.start()
    engine = sa.create_engine(
        "postgresql+psycopg://" + settings_env["STEWARD_DATABASE_URL"].split("://", 1)[1]
    )
    try:
        runtime.keys.create("bench", tenant_id="default")
        batch = f"b{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(16)

        async def submit() -> None:
            async with semaphore:
                await runtime.engine.submit(
                    RunRequest(tenant_id="default", agent="noop3", input={}, metadata={"b": batch})
                )

        await asyncio.gather(*(submit() for _ in range(runs)))
        query = sa.text("SELECT count(*) FROM runs WHERE status NOT IN ('pending', 'running')")
        while True:
            with engine.connect() as conn:
                if conn.execute(query).scalar_one() >= runs:
                    break
            await asyncio.sleep(0.02)
        return runs / (time.perf_counter() - started)
    finally:
        engine.dispose()
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    figures: dict[str, float] = {}
    for count in args.workers:
        name = f"steward_queue_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.postgres_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.postgres_url.rsplit("/", 1)[0] + f"/{name}"
        home = Path(tempfile.mkdtemp(prefix="steward-queue-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
        env.update(STEWARD_HOME=str(home), STEWARD_DATABASE_URL=url, PYTHONUNBUFFERED="1")
        procs: list[subprocess.Popen[bytes]] = []
        try:
            subprocess.run([STEWARD, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
            procs = start_workers(env, count, home)
            runs_s = asyncio.run(engine_rate(env, args.runs))
            raw_s = raw_rate(url, args.runs * 3, count)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        figures[f"workers_{count}_runs_s"] = runs_s
        # Three claims per run (one per step) is the raw queue's fair counterpart of a 3-step run.
        figures[f"raw_{count}_runs_s"] = raw_s / 3
        figures[f"ratio_{count}"] = (raw_s / 3) / runs_s
        print(
            f"{count} workers: {runs_s:.1f} runs/s; raw queue {raw_s:.0f} jobs/s "
            f"({raw_s / 3:.0f} 3-claim runs/s); engine costs {figures[f'ratio_{count}']:.1f}x",
            flush=True,
        )
    print(" ".join(f"{key}={value:.2f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
