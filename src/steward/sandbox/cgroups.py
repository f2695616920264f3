"""cgroup v1 groups for one sandbox: memory, CPU rate, pids, CPU accounting and the freezer.

Groups nest under Steward's own cgroup in each hierarchy, so a container or supervisor limiting
Steward also limits its sandboxes. Pre-created once per sandbox: joining a v1 group costs ~13 ms.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from steward.errors import SandboxUnavailable
from steward.sandbox.types import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
GROUP_PARENT = "steward-sandboxes"
CFS_PERIOD_US = 100_000


def own_paths(proc_cgroup: str | None = None) -> dict[str, str]:
    """Controller -> this process's path in that v1 hierarchy (from /proc/self/cgroup)."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                paths[controller.removeprefix("name=")] = path
    return paths


def parent_dirs() -> dict[str, Path]:
    """Where this process's sandboxes' groups live, one directory per controller."""
    own = own_paths()
    dirs: dict[str, Path] = {}
    for controller in CONTROLLERS:
        mount = CGROUP_ROOT / controller
        if controller not in own or not (mount / "cgroup.procs").exists():
            raise SandboxUnavailable(f"the cgroup v1 {controller!r} controller is not mounted")
        dirs[controller] = mount / own[controller].lstrip("/") / GROUP_PARENT
    return dirs


def unavailable_reason() -> str | None:
    try:
        dirs = parent_dirs()
    except SandboxUnavailable as exc:
        return str(exc)
    for directory in dirs.values():
        probe = directory if directory.exists() else directory.parent
        if not os.access(probe, os.W_OK):
            return f"cannot create cgroups under {probe} (run as root or delegate the cgroup)"
    return None


class CgroupSet:
    """The five per-controller directories of one sandbox."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, name: str, limits: Limits) -> CgroupSet:
        dirs = {c: parent / name for c, parent in parent_dirs().items()}
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
        """Set memory, pids and CPU rate; also on a running group (a pooled sandbox's hand-out)."""
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
        """The `cgroup.procs` files a launcher writes its pid into before exec'ing the sandbox."""
        return [directory / "cgroup.procs" for directory in self.dirs.values()]

    def _write(self, controller: str, file: str, value: str) -> None:
        (self.dirs[controller] / file).write_text(value)

    def _read(self, controller: str, file: str) -> str:
        return (self.dirs[controller] / file).read_text()

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def _set_freezer(self, state: str) -> None:
        self._write("freezer", "freezer.state", state)
        deadline = time.monotonic() + 5
        while self._read("freezer", "freezer.state").strip() != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cgroup freezer did not reach {state}")
            time.sleep(0.0002)

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
        try:
            text = self._read("pids", "cgroup.procs")
        except FileNotFoundError:
            return []
        return [int(pid) for pid in text.split()]

    def kill_all(self) -> None:
        """SIGKILL every process; frozen first so a fork bomb cannot outrun the kill loop."""
        if not self.dirs["freezer"].exists():
            return
        self.freeze()
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.thaw()
        deadline = time.monotonic() + 5
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.002)

    def remove(self) -> None:
        self.kill_all()
        for directory in self.dirs.values():
            deadline = time.monotonic() + 2
            while directory.exists():
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)  # the last exited task may still be leaving the group


def sweep(prefix: str) -> int:
    """Remove leftover groups whose name starts with `prefix` (after a crash); returns a count."""
    removed = 0
    try:
        parents = parent_dirs()
    except SandboxUnavailable:
        return 0
    names = {
        child.name
        for parent in parents.values()
        if parent.exists()
        for child in parent.iterdir()
        if child.is_dir() and child.name.startswith(prefix)
    }
    for name in names:
        CgroupSet({c: parent / name for c, parent in parents.items()}).remove()
        removed += 1
    return removed


def remove_everywhere(relative: str) -> None:
    """rmdir `relative` (under our own group) in every v1 hierarchy: runsc creates them all."""
    for controller, own in own_paths().items():
        directory = CGROUP_ROOT / controller / own.lstrip("/") / relative
        deadline = time.monotonic() + 2
        while directory.is_dir():
            try:
                directory.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
