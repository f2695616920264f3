"""Sandbox costs per backend against a bare `subprocess` of the same command, in the same run.

Create-to-first-exec (bwrap: cold, from the warm pool with default limits, and from the pool
with every limit and the environment changed at hand-out), exec round trip, warm and cold
resume, idle PSS per sandbox, and how many idle sandboxes fit. The bare subprocess rounds are
interleaved with the measured ones, so both see the same load on a shared machine; ratios
divide by it. Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from steward.sandbox.manager import CreateOptions, SandboxManager
from steward.sandbox.types import ExecRequest, Limits
from steward.store import migrate
from steward.store.database import Database
from steward.store.schema import Tenant

TENANT = "bench"
COMMAND = ["true"]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def pss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Baseline:
    """Bare `subprocess.run` of the command, one round beside every measured round."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def round(self) -> None:
        started = time.perf_counter()
        subprocess.run(COMMAND, check=True)
        self.samples.append(time.perf_counter() - started)

    def ms(self) -> float:
        return ms(statistics.median(self.samples))


async def exec_once(manager: SandboxManager, sandbox_id: str) -> float:
    started = time.perf_counter()
    done = await manager.run(TENANT, sandbox_id, ExecRequest(COMMAND, {}, "/work", b"", 30))
    assert done.result.exit_code == 0, done
    return time.perf_counter() - started


async def bench_exec(
    manager: SandboxManager, backend: str, rounds: int, baseline: Baseline
) -> dict[str, float]:
    options = CreateOptions(backend=backend, limits=Limits(), idle_timeout_s=3600)
    info = await manager.create(TENANT, options)
    execs = []
    for _ in range(rounds):
        baseline.round()
        execs.append(await exec_once(manager, info.id))
    await manager.delete(TENANT, info.id)
    return {"exec_ms": ms(statistics.median(execs))}


async def bench_backend(
    manager: SandboxManager, backend: str, rounds: int, idle: int, baseline: Baseline
) -> dict[str, float]:
    options = CreateOptions(backend=backend, limits=Limits(), idle_timeout_s=3600)
    figures: dict[str, float] = {}
    creates, execs = [], []
    for _ in range(max(3, rounds // 10)):
        started = time.perf_counter()
        info = await manager.create(TENANT, options)
        await exec_once(manager, info.id)
        creates.append(time.perf_counter() - started)
        await manager.delete(TENANT, info.id)
    figures["create_exec_ms"] = ms(statistics.median(creates))
    info = await manager.create(TENANT, options)
    for _ in range(rounds):
        baseline.round()
        execs.append(await exec_once(manager, info.id))
    figures["exec_ms"] = ms(statistics.median(execs))
    backend_impl = manager.backends[backend]
    for mode in backend_impl.standby_modes:
        resumes = []
        for _ in range(max(3, rounds // 10) if mode == "warm" else 3):
            await manager.standby(TENANT, info.id, mode)
            started = time.perf_counter()
            await manager.resume(TENANT, info.id)
            resumes.append(time.perf_counter() - started)
        figures[f"{mode}_resume_ms"] = ms(statistics.median(resumes))
    await manager.delete(TENANT, info.id)
    ids = [(await manager.create(TENANT, options)).id for _ in range(idle)]
    await asyncio.sleep(1)
    pss = sum(pss_mib(manager._live[i].instance.pids()) for i in ids) / idle
    figures["idle_pss_mib"] = round(pss, 2)
    figures["idle_100_mib"] = round(pss * 100, 1)
    figures["idle_fit"] = int(available_mib() / pss) if pss else 0
    for sandbox_id in ids:
        await manager.delete(TENANT, sandbox_id)
    return figures


# Every limit and the environment differ from the pool's launch profile: applied at hand-out.
CUSTOM = CreateOptions(
    backend="bwrap",
    limits=Limits(memory_mib=128, pids=32, cpus=0.5, disk_mib=64, tmp_mib=16, open_files=128),
    env={"MODE": "bench"},
    idle_timeout_s=3600,
)


async def bench_pooled(
    db: Database, home: Path, rounds: int, size: int, baseline: Baseline
) -> dict[str, float]:
    """bwrap create-to-first-exec served by the warm pool (each create waits for its refill)."""
    manager = SandboxManager(db, home, pool_size=size)
    await manager.start()
    default = CreateOptions(backend="bwrap", limits=Limits(), idle_timeout_s=3600)
    figures: dict[str, float] = {}
    try:
        for name, options in (("pooled", default), ("pooled_custom", CUSTOM)):
            creates, handouts = [], []
            for _ in range(max(3, rounds // 5)):
                await manager.pool.wait_full()
                baseline.round()
                started = time.perf_counter()
                info = await manager.create(TENANT, options)
                handouts.append(time.perf_counter() - started)
                await exec_once(manager, info.id)
                creates.append(time.perf_counter() - started)
                await manager.delete(TENANT, info.id)
            figures[f"{name}_create_exec_ms"] = ms(statistics.median(creates))
            figures[f"{name}_create_ms"] = ms(statistics.median(handouts))
    finally:
        await manager.close()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--idle", type=int, default=10, help="idle sandboxes to measure PSS on")
    parser.add_argument("--backends", default="bwrap,gvisor")
    parser.add_argument("--pool", type=int, default=2, help="warm pool size for the pooled run")
    parser.add_argument(
        "--exec-only",
        action="store_true",
        help="only the exec round trip of each backend (`--rounds` execs; for a profiler)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        db = Database(url)
        with db.session() as session:
            session.add(Tenant(id=TENANT, name=TENANT))
        manager = SandboxManager(db, Path(tmp) / "home", pool_size=0)  # cold figures first
        await manager.start()
        baseline = Baseline()
        results: dict[str, float] = {}
        try:
            for backend in args.backends.split(","):
                reason = manager.backends[backend].unavailable_reason()
                if reason:
                    print(f"{backend}: unavailable ({reason})", file=sys.stderr)
                    continue
                if args.exec_only:
                    figures = await bench_exec(manager, backend, args.rounds, baseline)
                else:
                    figures = await bench_backend(
                        manager, backend, args.rounds, args.idle, baseline
                    )
                if backend == "bwrap" and args.pool > 0 and not args.exec_only:
                    home = Path(tmp) / "home"
                    figures |= await bench_pooled(db, home, args.rounds, args.pool, baseline)
                for key, value in figures.items():
                    results[f"{backend}_{key}"] = value
                print(backend, figures, flush=True)
        finally:
            await manager.close()
            db.dispose()
    bare = baseline.ms()
    results = {"subprocess_exec_ms": bare, **results}
    for key in [k for k in results if k.endswith("exec_ms") and k != "subprocess_exec_ms"]:
        results[key.removesuffix("_ms") + "_vs_subprocess"] = round(results[key] / bare, 2)
    print(" ".join(f"{key}={value}" for key, value in results.items()))


if __name__ == "__main__":
    asyncio.run(main())
