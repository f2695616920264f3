"""One 3-step agent (model → tool → model) via `langgraph-sdk`: Steward against `langgraph dev`.

Steward serves `benchmarks/apps/agent3_app.py` with `steward dev` (embedded SQLite, the built-in
local model); with `--peer-venv` naming a throwaway venv that has `langgraph-cli[inmem]`
installed, `langgraph dev` serves the same agent as a graph (`benchmarks/apps/langgraph_agent3`)
in the same run. For each server: the median of sequential `runs.wait` calls, then runs/s and
p50/p99 with `--concurrency` clients each looping `runs.wait`, and the server's CPU per run
(utime + stime of the server's process tree from /proc, across the concurrent phase).
Last line: key=value figures, with ratios when the peer ran.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from langgraph_sdk import get_client

ROOT = Path(__file__).resolve().parents[1]
STEWARD = str(Path(sys.executable).with_name("steward"))
STEWARD_APP = ROOT / "benchmarks" / "apps" / "agent3_app.py"
PEER_APP = ROOT / "benchmarks" / "apps" / "langgraph_agent3"
QUESTION = {"message": "Where is my order 42?"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


@dataclass
class Figures:
    sequential_ms: float
    runs_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_run: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu_s(root: int) -> float:
    """utime + stime of `root` and all its descendants, in seconds."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        todo.extend(children.get(pid, []))
    return total


def wait_healthy(url: str, proc: subprocess.Popen[bytes], path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not healthy after {timeout_s}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def measure(
    url: str,
    api_key: str | None,
    pid: int,
    *,
    sequential: int,
    runs: int,
    concurrency: int,
    profile: list[str] | None = None,
) -> Figures:
    client = get_client(url=url, api_key=api_key)
    try:

        async def one() -> float:
            started = time.perf_counter()
            result = await client.runs.wait(None, "agent3", input=QUESTION)
            assert isinstance(result, dict) and "shipped" in str(result), result
            return time.perf_counter() - started

        for _ in range(5):  # warm-up: first imports, connections, compiled graphs
            await one()
        seq = [await one() for _ in range(sequential)]
        latencies: list[float] = []
        remaining = [runs]

        async def loop() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                latencies.append(await one())

        spy = None
        if profile:  # py-spy over the concurrent phase only (it adds its own CPU: figures skew)
            spy = await asyncio.create_subprocess_exec(
                PY_SPY, "record", "--pid", str(pid), "--rate", "200", *profile
            )
            await asyncio.sleep(1.0)
        cpu_before = tree_cpu_s(pid)
        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_s(pid) - cpu_before
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
    finally:
        await client.aclose()
    ordered = sorted(latencies)
    return Figures(
        sequential_ms=statistics.median(seq) * 1000,
        runs_per_s=runs / elapsed,
        p50_ms=ordered[len(ordered) // 2] * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        cpu_ms_per_run=cpu * 1000 / runs,
    )


def run_steward(home: Path, options: argparse.Namespace) -> Figures:
    port = free_port()
    env = {**os.environ, "STEWARD_HOME": str(home), "STEWARD_MODEL": "local"}
    log = (home / "steward.log").open("wb")
    proc = subprocess.Popen(
        [STEWARD, "dev", str(STEWARD_APP), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, "/readyz", 60)
        key = subprocess.run(
            [STEWARD, "keys", "create", "--name", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return asyncio.run(
            measure(
                url,
                key.splitlines()[-1],
                proc.pid,
                sequential=options.sequential,
                runs=options.runs,
                concurrency=options.concurrency,
                profile=options.py_spy,
            )
        )
    finally:
        stop(proc)
        log.close()


def run_peer(home: Path, venv: Path, options: argparse.Namespace) -> Figures:
    port = free_port()
    app = home / "peer_app"
    shutil.copytree(PEER_APP, app)
    log = (home / "peer.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "langgraph"), "dev", "--port", str(port), "--no-browser"],
        cwd=app,
        env={**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, "/ok", 120)
        return asyncio.run(
            measure(
                url,
                None,
                proc.pid,
                sequential=options.sequential,
                runs=options.runs,
                concurrency=options.concurrency,
            )
        )
    finally:
        stop(proc)
        log.close()


def key_values(prefix: str, figures: Figures) -> str:
    return (
        f"{prefix}_seq_ms={figures.sequential_ms:.1f} {prefix}_runs_per_s={figures.runs_per_s:.1f} "
        f"{prefix}_p50_ms={figures.p50_ms:.1f} {prefix}_p99_ms={figures.p99_ms:.1f} "
        f"{prefix}_cpu_ms_per_run={figures.cpu_ms_per_run:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=400, help="runs in the concurrent phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequential", type=int, default=20, help="sequential runs")
    parser.add_argument(
        "--peer-venv", type=Path, default=None, help="a venv with langgraph-cli[inmem]"
    )
    parser.add_argument(
        "--py-spy",
        nargs=argparse.REMAINDER,
        default=None,
        help="profile Steward's concurrent phase: the rest are py-spy record options, "
        "e.g. --py-spy --format flamegraph -o benchmarks/profiles/steward_dev_16.svg",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        steward = run_steward(home, options)
        print(key_values("steward", steward), file=sys.stderr)
        line = f"concurrency={options.concurrency} runs={options.runs} " + key_values(
            "steward", steward
        )
        if options.peer_venv is not None:
            peer = run_peer(home, options.peer_venv, options)
            print(key_values("langgraph", peer), file=sys.stderr)
            line += (
                " "
                + key_values("langgraph", peer)
                + f" runs_per_s_ratio={steward.runs_per_s / peer.runs_per_s:.2f}"
                + f" cpu_per_run_ratio={steward.cpu_ms_per_run / peer.cpu_ms_per_run:.2f}"
                + f" seq_ratio={steward.sequential_ms / peer.sequential_ms:.3f}"
                + f" p99_ratio={steward.p99_ms / peer.p99_ms:.2f}"
            )
    print(line)


if __name__ == "__main__":
    main()
