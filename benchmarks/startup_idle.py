"""Start-up time, idle CPU and idle memory of `steward dev`, against a bare uvicorn app.

Both servers start the same way (a subprocess on a free port, polled until healthy); the
baseline is a one-route Starlette app under uvicorn, measured in the same run. Idle CPU is the
utime + stime the server's process tree spends over `--idle-s` seconds with no requests; RSS is
the tree's resident memory at the end of that wait. Each round starts Steward twice on one data
directory: first on a new one (the store is created and migrated), then again on it (a restart,
what `steward dev` does most days). Last line: key=value figures and ratios.
"""

from __future__ import annotations

import argparse
import os
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

ROOT = Path(__file__).resolve().parents[1]
STEWARD = str(Path(sys.executable).with_name("steward"))
APP = ROOT / "benchmarks" / "apps" / "agent3_app.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BASELINE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def ok(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/healthz", ok)])
"""


@dataclass
class Figures:
    healthy_s: float
    startup_cpu_s: float  # CPU the tree spent until healthy: steadier than wall time under load
    idle_cpu_ms_per_s: float
    rss_mib: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except OSError:
            continue
    return total / 2**20


def measure(command: list[str], env: dict[str, str], cwd: Path, idle_s: float) -> Figures:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        # One client for the whole wait: `httpx.get` builds a client (and its TLS context, tens
        # of ms of CPU) per attempt, which on a small machine slows the server being timed.
        with httpx.Client(timeout=1) as poller:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{command} exited with {proc.returncode}")
                try:
                    if poller.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.01)
        healthy = time.perf_counter() - started
        startup_cpu = cpu_s(tree(proc.pid))
        time.sleep(1.0)  # let start-up work (recovery, first heartbeats) settle
        pids = tree(proc.pid)
        before = cpu_s(pids)
        time.sleep(idle_s)
        pids = tree(proc.pid)
        idle = (cpu_s(pids) - before) * 1000 / idle_s
        return Figures(healthy, startup_cpu, idle, rss_mib(pids))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="starts of each server")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle window per start")
    options = parser.parse_args()
    steward: list[Figures] = []
    restart: list[Figures] = []
    bare: list[Figures] = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bare_app.py").write_text(BASELINE_APP)
        for index in range(options.rounds):
            home = Path(tmp) / f"home{index}"  # a fresh data directory: first start each time
            env = {**os.environ, "STEWARD_HOME": str(home), "STEWARD_MODEL": "local"}
            steward.append(measure([STEWARD, "dev", str(APP)], env, ROOT, options.idle_s))
            restart.append(measure([STEWARD, "dev", str(APP)], env, ROOT, options.idle_s))
            uvicorn = [sys.executable, "-m", "uvicorn", "bare_app:app", "--log-level", "warning"]
            bare.append(measure(uvicorn, dict(os.environ), Path(tmp), options.idle_s))
            print(
                f"round {index + 1}: steward {steward[-1]}, restart {restart[-1]}, bare {bare[-1]}",
                file=sys.stderr,
            )

    def med(figures: list[Figures], field: str) -> float:
        return statistics.median(getattr(f, field) for f in figures)

    s_healthy, b_healthy = med(steward, "healthy_s"), med(bare, "healthy_s")
    s_idle, b_idle = med(steward, "idle_cpu_ms_per_s"), med(bare, "idle_cpu_ms_per_s")
    s_rss, b_rss = med(steward, "rss_mib"), med(bare, "rss_mib")
    r_healthy, r_rss = med(restart, "healthy_s"), med(restart, "rss_mib")
    s_cpu, r_cpu, b_cpu = (med(f, "startup_cpu_s") for f in (steward, restart, bare))
    print(
        f"steward_healthy_s={s_healthy:.2f} steward_idle_cpu_ms_per_s={s_idle:.1f} "
        f"steward_rss_mib={s_rss:.0f} bare_healthy_s={b_healthy:.2f} "
        f"bare_idle_cpu_ms_per_s={b_idle:.1f} bare_rss_mib={b_rss:.0f} "
        f"healthy_ratio={s_healthy / b_healthy:.1f} rss_ratio={s_rss / b_rss:.1f} "
        f"idle_cpu_over_bare_ms_per_s={s_idle - b_idle:.1f} "
        f"steward_restart_healthy_s={r_healthy:.2f} steward_restart_rss_mib={r_rss:.0f} "
        f"restart_healthy_ratio={r_healthy / b_healthy:.1f} "
        f"steward_startup_cpu_s={s_cpu:.2f} steward_restart_startup_cpu_s={r_cpu:.2f} "
        f"bare_startup_cpu_s={b_cpu:.2f}"
    )


if __name__ == "__main__":
    main()
