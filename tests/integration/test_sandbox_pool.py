"""The warm pool of bwrap sandboxes: sized from recent demand within its bound, private per
sandbox, every limit and the environment applied at hand-out, cold launches only for volumes,
nothing left after close; size 0 disables it."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.sandbox import cgroups
from steward.sandbox.bwrap import BwrapBackend, BwrapInstance
from steward.sandbox.manager import CreateOptions, SandboxManager
from steward.sandbox.pool import Demand
from steward.sandbox.types import Limits
from tests.integration.sandbox_support import (
    TENANT,
    leftovers,
    open_manager,
    require_available,
    run,
)


@pytest.fixture(autouse=True)
def bwrap_here() -> None:
    require_available("bwrap", BwrapBackend().unavailable_reason())


async def close_clean(manager: SandboxManager, ids: list[str]) -> None:
    ids = ids + manager.pool.ids()
    await manager.close()
    assert leftovers(manager, ids) == []
    assert len(manager.pool) == 0


async def test_pooled_sandbox_gets_every_limit_and_its_environment_at_hand_out(
    tmp_path: Path,
) -> None:
    manager = await open_manager(tmp_path, pool_size=2)
    pooled = manager.pool.ids()
    assert len(pooled) == 1  # no demand yet: one ready sandbox
    limits = Limits(memory_mib=96, pids=24, cpus=0.5, disk_mib=16, tmp_mib=8, open_files=64)
    options = CreateOptions(backend="bwrap", limits=limits, env={"GREETING": "hello"})
    info = await manager.create(TENANT, options)
    assert info.id == pooled[0] and info.limits["memory_mib"] == 96
    assert info.limits["tmp_mib"] == 8 and info.limits["open_files"] == 64
    group = {c: d / f"sbx-{info.id}" for c, d in cgroups.parent_dirs().items()}
    assert (group["memory"] / "memory.limit_in_bytes").read_text().strip() == str(96 << 20)
    assert (group["memory"] / "memory.memsw.limit_in_bytes").read_text().strip() == str(96 << 20)
    assert (group["pids"] / "pids.max").read_text().strip() == "24"
    assert (group["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
    # The work directory was resized: 17 MiB do not fit any more.
    full = await run(manager, info.id, "head -c 17M /dev/zero > big; echo $?")
    assert full.stdout.strip() != b"0" and b"No space left" in full.stderr
    # /tmp was resized: 9 MiB do not fit in 8.
    tmp = await run(manager, info.id, "head -c 9M /dev/zero > /tmp/big; echo $?")
    assert tmp.stdout.strip() != b"0" and b"No space left" in tmp.stderr
    fits = await run(manager, info.id, "rm /tmp/big; head -c 7M /dev/zero > /tmp/ok")
    assert fits.result.exit_code == 0, fits
    seen = await run(manager, info.id, "ulimit -n; ulimit -Hn; echo $GREETING")
    assert seen.stdout.split() == [b"64", b"64", b"hello"]
    # Its CPU budget counts from the hand-out, not from its launch in the pool.
    instance = manager._live[info.id].instance
    assert isinstance(instance, BwrapInstance)
    assert instance.cpu_seconds() < instance.group.cpu_seconds()
    await close_clean(manager, [info.id])


async def test_pooled_sandboxes_are_private_and_the_pool_refills(tmp_path: Path) -> None:
    manager = await open_manager(tmp_path, pool_size=2)
    first = await manager.create(TENANT, CreateOptions(backend="bwrap"))
    second = await manager.create(TENANT, CreateOptions(backend="bwrap"))
    uids = {manager._live[i].spec.host_uid for i in (first.id, second.id)}
    assert len(uids) == 2
    await run(manager, first.id, "echo mine > secret")
    seen = await run(manager, second.id, "ls /work; ls /run/steward-sandboxes 2>&1; id -u")
    assert b"secret" not in seen.stdout and seen.stdout.split()[-1] == b"65534"
    await manager.pool.wait_full()
    assert len(manager.pool) == 2 and not set(manager.pool.ids()) & {first.id, second.id}
    await close_clean(manager, [first.id, second.id])


async def test_what_the_pool_cannot_serve_is_launched_cold(tmp_path: Path) -> None:
    manager = await open_manager(tmp_path, pool_size=1)
    pooled = manager.pool.ids()
    odd = CreateOptions(backend="bwrap", limits=Limits(tmp_mib=8), volumes=["data"])
    info = await manager.create(TENANT, odd)
    assert info.id not in pooled and manager.pool.ids() == pooled
    assert (await run(manager, info.id, "ls -d /volumes/data")).result.exit_code == 0
    await close_clean(manager, [info.id])


async def test_pool_grows_with_a_burst_of_creates_and_shrinks_when_demand_falls(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    manager = await open_manager(tmp_path, pool_size=3)
    manager.pool.demand = Demand(clock=lambda: now[0])
    ids = [(await manager.create(TENANT, CreateOptions(backend="bwrap"))).id for _ in range(4)]
    assert manager.pool.target() == 3  # four asked for within seconds; bounded by the size
    await manager.pool.wait_full()
    assert len(manager.pool) == 3
    now[0] += 120  # the burst is out of the demand window
    ids.append((await manager.create(TENANT, CreateOptions(backend="bwrap"))).id)
    assert manager.pool.target() == 1
    await manager.pool.wait_full()
    assert len(manager.pool) == 1
    await close_clean(manager, ids)


async def test_pool_size_zero_disables_the_pool(tmp_path: Path) -> None:
    manager = await open_manager(tmp_path, pool_size=0)
    info = await manager.create(TENANT, CreateOptions(backend="bwrap"))
    assert len(manager.pool) == 0 and manager.pool.ids() == []
    assert (await run(manager, info.id, "echo cold")).stdout == b"cold\n"
    await close_clean(manager, [info.id])
