"""Batch items per second on PostgreSQL with `steward serve` and 2 `steward worker`s, against raw
run submission measured in the same run on the same cluster.

Raw run submission: the same number of runs of the same agent, each `POST /runs` by a client
with `--concurrency` requests in flight, timed until every run has ended. The batch: one
`POST /v1/batches` with as many items (and `concurrency` for the batch), timed until the batch
is `completed`. The ratio is batch items/s over raw runs/s: what the batch machinery (claims,
deterministic threads, settlement) costs or saves. Last line: key=value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
STEWARD = str(Path(sys.executable).with_name("steward"))
APP = str(ROOT / "benchmarks" / "apps" / "noop_app.py")
AGENT = "noop3"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(env: dict[str, str], home: Path, log: str, *args: str) -> subprocess.Popen[bytes]:
    with (home / log).open("ab") as out:
        return subprocess.Popen(
            [STEWARD, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait(check: Callable[[], bool], what: str, home: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen; see {home}")


def _started(log: Path) -> bool:
    return b"executing runs" in log.read_bytes()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _ended(url: str, marker: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE status NOT IN ('pending', 'running') "
            "AND metadata::jsonb->>'bench' = %s",
            (marker,),
        ).fetchone()
    return int(row[0]) if row else 0


async def raw_rate(base: str, key: str, db_url: str, runs: int, concurrency: int) -> float:
    """Runs per second: `runs` POST /runs, `concurrency` at a time, until all have ended."""
    marker = uuid.uuid4().hex
    semaphore = asyncio.Semaphore(concurrency)
    body = {"assistant_id": AGENT, "input": {}, "metadata": {"bench": marker}}
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": key}, timeout=60) as client:
        started = time.perf_counter()

        async def submit() -> None:
            async with semaphore:
                answer = await client.post("/runs", json=body)
                answer.raise_for_status()

        await asyncio.gather(*(submit() for _ in range(runs)))
        while True:
            if await asyncio.to_thread(_ended, db_url, marker) >= runs:
                break
            await asyncio.sleep(0.05)
        return runs / (time.perf_counter() - started)


def batch_rate(base: str, key: str, items: int, concurrency: int) -> float:
    """Items per second from `POST /v1/batches` to the batch `completed`."""
    with httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=120) as client:
        started = time.perf_counter()
        created = client.post(
            "/v1/batches",
            json={"agent": AGENT, "items": [{}] * items, "concurrency": concurrency},
        )
        created.raise_for_status()
        batch_id = created.json()["batch_id"]
        while True:
            view = client.get(f"/v1/batches/{batch_id}").json()
            if view["status"] == "completed":
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        assert view["counts"]["succeeded"] == items, view
        return items / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="items (and raw runs)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    name = f"steward_batch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.postgres_url.rsplit("/", 1)[0] + f"/{name}"
    home = Path(tempfile.mkdtemp(prefix="steward-batch-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(
        STEWARD_HOME=str(home),
        STEWARD_DATABASE_URL=url,
        STEWARD_BATCH_POLL_INTERVAL_S="0.05",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([STEWARD, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
        procs.append(_spawn(env, home, "serve.log", "serve", APP, "--port", str(port)))
        _wait(lambda: _ready(base), "steward serve start", home)
        for slot in range(args.workers):
            log = f"worker{slot}.log"
            procs.append(_spawn(env, home, log, "worker", APP, "--slot", str(slot)))
            _wait(partial(_started, home / log), "worker start", home)
        made = subprocess.run(
            [STEWARD, "keys", "create", "--name", "bench"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        key = made.stdout.strip().splitlines()[-1]
        raw_s = asyncio.run(raw_rate(base, key, url, args.items, args.concurrency))
        print(f"raw run submission: {raw_s:.1f} runs/s", flush=True)
        batch_s = batch_rate(base, key, args.items, args.concurrency)
        print(f"batch: {batch_s:.1f} items/s", flush=True)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        with psycopg.connect(args.postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(
        f"items={args.items} workers={args.workers} batch_items_s={batch_s:.2f} "
        f"raw_runs_s={raw_s:.2f} ratio={batch_s / raw_s:.3f}"
    )


if __name__ == "__main__":
    main()
