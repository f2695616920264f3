"""cgroup v1: one directory per controller (memory, cpu, cpuacct, pids, freezer).

Groups nest under Steward's own cgroup in each hierarchy, so a container or supervisor limiting
Steward also limits its sandboxes. Pre-created once per sandbox: joining a v1 group costs ~13 ms.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from steward.sandbox.cgroup_base import EMPTY_TIMEOUT_S, CgroupGroup, wait_blocking
from steward.sandbox.types import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
CFS_PERIOD_US = 100_000


class CgroupSet(CgroupGroup):
    """The five per-controller directories of one sandbox."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, dirs: dict[str, Path], limits: Limits) -> CgroupSet:
        group = cls(dirs)
        try:
            for directory in dirs.values():
                directory.mkdir(parents=True, exist_ok=True)
            group._write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US))
            group.apply(limits)
        except BaseException:
            group.remove()
            raise
        return group

    def apply(self, limits: Limits) -> None:
        memory = limits.memory_mib * 1024 * 1024
        memsw = self.dirs["memory"] / "memory.memsw.limit_in_bytes"
        # The kernel keeps memory <= memory+swap at every step: order the two writes by direction.
        steps = [("memory.limit_in_bytes", memory)]
        if memsw.exists():  # memory+swap = memory: no escape into swap
            current = int(self._read("memory", "memory.limit_in_bytes"))
            raising = memory > current
            steps = (
                [("memory.memsw.limit_in_bytes", memory), *steps]
                if raising
                else [*steps, ("memory.memsw.limit_in_bytes", memory)]
            )
        for file, value in steps:
            self._write("memory", file, str(value))
        self._write("pids", "pids.max", str(limits.pids))
        self._write("cpu", "cpu.cfs_quota_us", str(int(limits.cpus * CFS_PERIOD_US)))

    def procs_files(self) -> list[Path]:
        return [directory / "cgroup.procs" for directory in self.dirs.values()]

    def directories(self) -> list[Path]:
        return list(self.dirs.values())

    def _write(self, controller: str, file: str, value: str) -> None:
        (self.dirs[controller] / file).write_text(value)

    def _read(self, controller: str, file: str) -> str:
        return (self.dirs[controller] / file).read_text()

    def _request_frozen(self, frozen: bool) -> None:
        self._write("freezer", "freezer.state", "FROZEN" if frozen else "THAWED")

    def _reached(self, frozen: bool) -> bool:
        return self._read("freezer", "freezer.state").strip() == ("FROZEN" if frozen else "THAWED")

    def frozen(self) -> bool:
        return self._read("freezer", "freezer.state").strip() != "THAWED"

    def cpu_seconds(self) -> float:
        return int(self._read("cpuacct", "cpuacct.usage")) / 1e9

    def memory_bytes(self) -> int:
        return int(self._read("memory", "memory.usage_in_bytes"))

    def oom_kills(self) -> int:
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        """Processes of the group and of its child groups (runsc nests its own)."""
        found: list[int] = []
        for procs in self.dirs["pids"].glob("**/cgroup.procs"):
            with contextlib.suppress(FileNotFoundError):
                found += [int(pid) for pid in procs.read_text().split()]
        return sorted(set(found))

    def kill_all(self) -> None:
        """Frozen first so a fork bomb cannot outrun the kill loop (v1 has no cgroup.kill)."""
        if not self.dirs["freezer"].exists():
            return
        self.freeze_blocking(True)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.freeze_blocking(False)
        with contextlib.suppress(TimeoutError):  # a task stuck in the kernel: rmdir will say so
            wait_blocking(lambda: not self.pids(), EMPTY_TIMEOUT_S, "killing the processes")
