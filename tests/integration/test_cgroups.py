"""Both cgroup implementations on this machine's real cgroup file systems, with real processes.

cgroup v2's core files (`cgroup.procs`, `cgroup.freeze`, `cgroup.events`, `cgroup.kill`,
`cpu.stat`) exist in every v2 group, controllers or not, so the v2 freezer, kill and CPU
accounting are exercised wherever cgroup2 is mounted (here: /sys/fs/cgroup/unified, a hybrid
host whose controllers are bound to v1). Its limits (`memory.max`, `pids.max`, `cpu.max`)
need the controllers: they are exercised only on a host that delegates them (see the probe test).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from steward.errors import SandboxUnavailable
from steward.sandbox import cgroup_v2, cgroups
from steward.sandbox.cgroup_base import CgroupGroup
from steward.sandbox.cgroup_v1 import CGROUP_ROOT
from steward.sandbox.cgroup_v2 import UnifiedGroup
from steward.sandbox.types import Limits

V1_MOUNTED = (CGROUP_ROOT / "freezer" / "cgroup.procs").exists()
IMPLEMENTATIONS = ["v2", *(["v1"] if V1_MOUNTED else [])]
SPIN_AND_FORK = (
    "import os, time\n"
    "for _ in range(8):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(600); os._exit(0)\n"
    "while True: pass\n"
)


def _v2_scratch() -> Path:
    mount = cgroup_v2.mount_point()
    own = cgroup_v2.own_path()
    if mount is None or own is None:
        pytest.fail("cgroup2 is not mounted on this machine")
    return cgroup_v2.base_dir(mount, own) / f"steward-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=IMPLEMENTATIONS)
def group(request: pytest.FixtureRequest) -> Iterator[CgroupGroup]:
    made: CgroupGroup
    if request.param == "v2":
        path = _v2_scratch()
        path.mkdir()
        made = UnifiedGroup(path)
    else:
        made = cgroups.create(f"test-{uuid.uuid4().hex[:10]}", Limits(pids=64, cpus=1.0))
        assert isinstance(made, cgroups.CgroupSet)
    try:
        yield made
    finally:
        made.remove()
        assert not any(directory.exists() for directory in made.directories())


def start_in(group: CgroupGroup, code: str) -> subprocess.Popen[bytes]:
    """A process that joins the group before exec'ing Python, as the sandbox launcher does."""
    joins = "; ".join(f"echo $$ > {procs}" for procs in group.procs_files())
    return subprocess.Popen(["sh", "-c", f'{joins}; exec python3 -c "{code}"'])


async def wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen")
        await asyncio.sleep(0.02)


async def test_cpu_seconds_count_what_the_group_spends(group: CgroupGroup) -> None:
    process = start_in(group, "while True: pass")
    try:
        await wait_for(lambda: group.cpu_seconds() > 0.2, "the spinner using 0.2 CPU-s")
        assert group.pids() == [process.pid]
    finally:
        process.kill()
        process.wait()


async def test_freeze_stops_every_process_and_thaw_resumes_them(group: CgroupGroup) -> None:
    process = start_in(group, SPIN_AND_FORK)
    try:
        await wait_for(lambda: len(group.pids()) == 9, "the forks")
        await group.freeze()
        assert group.frozen()
        frozen_at = group.cpu_seconds()
        await asyncio.sleep(0.3)
        assert group.cpu_seconds() == frozen_at  # nothing ran while frozen
        await group.thaw()
        assert not group.frozen()
        await wait_for(lambda: group.cpu_seconds() > frozen_at + 0.05, "the spinner resuming")
    finally:
        process.kill()
        process.wait()


async def test_kill_all_ends_a_frozen_forking_tree_and_remove_leaves_nothing(
    group: CgroupGroup,
) -> None:
    process = start_in(group, SPIN_AND_FORK)
    await wait_for(lambda: len(group.pids()) == 9, "the forks")
    await group.freeze()  # frozen tasks ignore SIGKILL until thawed: kill_all must handle it
    await asyncio.to_thread(group.kill_all)
    assert group.pids() == []
    assert process.wait(timeout=5) == -9
    await asyncio.to_thread(group.remove)
    assert not any(directory.exists() for directory in group.directories())


def test_v2_is_chosen_exactly_when_its_controllers_are_delegated() -> None:
    mount, own = cgroup_v2.mount_point(), cgroup_v2.own_path()
    assert mount is not None and own is not None
    missing = cgroup_v2.missing_controllers(cgroup_v2.base_dir(mount, own))
    if not missing:
        assert cgroups.detect().version == 2
        return
    if V1_MOUNTED:
        assert cgroups.detect().version == 1
    else:  # neither version usable: the reason names what each lacks
        with pytest.raises(SandboxUnavailable, match=f"controllers {missing[0]}.*v1"):
            cgroups.detect()


def test_v2_limits_are_applied_where_delegated_and_refused_loudly_where_not() -> None:
    """Where the unified hierarchy lacks the controllers (this machine), a v2 group cannot take
    limits and creating one fails instead of starting an unlimited sandbox; where they are
    delegated, the limits land in memory.max, pids.max and cpu.max."""
    limits = Limits(memory_mib=96, pids=32, cpus=0.5)
    path = _v2_scratch()
    if cgroup_v2.missing_controllers(path.parent):
        with pytest.raises(SandboxUnavailable, match="memory controller is not enabled"):
            UnifiedGroup.create(path, limits)
        assert not path.exists()
        return
    group = cgroups.create(f"test-{uuid.uuid4().hex[:10]}", limits)
    try:
        assert isinstance(group, UnifiedGroup)
        assert (group.path / "memory.max").read_text().strip() == str(96 * 1024 * 1024)
        assert (group.path / "pids.max").read_text().strip() == "32"
        assert (group.path / "cpu.max").read_text().split() == ["50000", "100000"]
    finally:
        group.remove()


@contextlib.contextmanager
def v2_controller_for_children() -> Iterator[tuple[Path, str]]:
    """A controller this host's unified hierarchy can hand to child groups (here: hugetlb, the
    only one not bound to v1), enabled for the base's children for the test and restored."""
    mount, own = cgroup_v2.mount_point(), cgroup_v2.own_path()
    assert mount is not None and own is not None
    base = cgroup_v2.base_dir(mount, own)
    available = sorted(set((base / "cgroup.controllers").read_text().split()))
    if not available:
        pytest.fail("no controller in the unified hierarchy to exercise delegation with")
    controller = available[0]
    control = base / "cgroup.subtree_control"
    was_enabled = controller in control.read_text().split()
    control.write_text(f"+{controller}")
    try:
        yield base, controller
    finally:
        if not was_enabled:
            with contextlib.suppress(OSError):  # another test run still uses it: leave it on
                control.write_text(f"-{controller}")


def test_v2_delegation_moves_steward_into_a_leaf_so_sandbox_groups_get_controllers() -> None:
    """The no-internal-processes rule for real: a group holding Steward cannot enable
    controllers for its children until Steward moves into a leaf; a group holding other
    processes too is refused with a reason. Exercised with the controller this host's
    unified hierarchy has; the sandbox controllers take the same path."""
    with v2_controller_for_children() as (home, controller):
        scratch = home / f"steward-test-{uuid.uuid4().hex[:10]}"
        scratch.mkdir()
        sleeper: subprocess.Popen[bytes] | None = None
        try:
            (scratch / "cgroup.procs").write_text("0")  # this process now holds `scratch`
            cgroup_v2.delegate(scratch, scratch / "steward-sandboxes", (controller,))
            own = cgroup_v2.own_path()
            assert own is not None and own.endswith(f"/{scratch.name}/steward-server")
            assert cgroup_v2.base_dir(_mount(), own) == scratch
            for group in (scratch, scratch / "steward-sandboxes"):
                assert controller in (group / "cgroup.subtree_control").read_text().split()

            crowded = scratch / "steward-sandboxes" / "crowded"
            crowded.mkdir()
            sleeper = subprocess.Popen(
                ["sh", "-c", f"echo $$ > {crowded}/cgroup.procs; exec sleep 60"]
            )
            while str(sleeper.pid) not in (crowded / "cgroup.procs").read_text().split():
                time.sleep(0.01)
            (crowded / "cgroup.procs").write_text("0")
            with pytest.raises(SandboxUnavailable, match="holds processes other than Steward"):
                cgroup_v2.delegate(crowded, crowded / "steward-sandboxes", (controller,))
        finally:
            (home / "cgroup.procs").write_text("0")  # back where this process started
            if sleeper is not None:
                sleeper.kill()
                sleeper.wait()
            UnifiedGroup(scratch).remove()
        assert not scratch.exists()


def _mount() -> Path:
    mount = cgroup_v2.mount_point()
    assert mount is not None
    return mount
