"""cgroup v2: one directory in the unified hierarchy, in a subtree delegated to Steward.

Limits: `memory.max` (and `memory.swap.max` = 0), `pids.max`, `cpu.max`. Freezing is
`cgroup.freeze` (state in `cgroup.events`), killing is `cgroup.kill` (atomic against forks:
no freeze-and-loop needed), CPU seconds come from `cpu.stat`'s `usage_usec`, which the kernel
keeps even without the cpu controller.

cgroup v2 lets a group that hands controllers to its children hold no processes itself (the
"no internal processes" rule, the root excepted). Steward therefore keeps its sandboxes under
`<base>/steward-sandboxes` and, when its own group `<base>` holds processes, moves itself into
the leaf `<base>/steward-server` first (what systemd's `Delegate=yes` services and container
runtimes do).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from pathlib import Path

from steward.errors import SandboxUnavailable
from steward.sandbox.cgroup_base import EMPTY_TIMEOUT_S, CgroupGroup, wait_blocking
from steward.sandbox.types import Limits

REQUIRED = ("cpu", "memory", "pids")
SERVER_LEAF = "steward-server"
CPU_PERIOD_US = 100_000


def mount_point(mountinfo: str | None = None) -> Path | None:
    """Where the unified (v2) hierarchy is mounted, if anywhere (/proc/self/mountinfo)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    for line in text.splitlines():
        fields, _, tail = line.partition(" - ")
        if tail.split(" ", 1)[0] == "cgroup2":
            return Path(fields.split()[4])
    return None


def own_path(proc_cgroup: str | None = None) -> str | None:
    """This process's group in the unified hierarchy (the `0::` line of /proc/self/cgroup)."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def base_dir(mount: Path, own: str) -> Path:
    """Steward's delegated group: its own, or the parent of the leaf it moved itself into."""
    base = mount / own.lstrip("/")
    return base.parent if base.name == SERVER_LEAF else base


def missing_controllers(base: Path) -> list[str]:
    try:
        available = set((base / "cgroup.controllers").read_text().split())
    except OSError:
        return list(REQUIRED)
    return [c for c in REQUIRED if c not in available]


def delegate(base: Path, parent: Path, controllers: tuple[str, ...] = REQUIRED) -> None:
    """Enable `controllers` for `parent`'s children: in `base` (moving this process into a leaf
    if `base` holds it) and in `parent`. Blocks briefly; idempotent."""
    parent.mkdir(exist_ok=True)
    try:
        _enable(base, controllers)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        leaf = base / SERVER_LEAF
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text("0")  # "0": the writing process, all its threads
        try:
            _enable(base, controllers)
        except OSError as again:
            raise SandboxUnavailable(
                f"cgroup v2: {base} holds processes other than Steward, so it cannot hand "
                "controllers to sandbox groups; start Steward in a cgroup delegated to it alone"
            ) from again
    _enable(parent, controllers)


def _enable(directory: Path, controllers: tuple[str, ...]) -> None:
    control = directory / "cgroup.subtree_control"
    enabled = set(control.read_text().split())
    wanted = [c for c in controllers if c not in enabled]
    if wanted:
        control.write_text(" ".join(f"+{c}" for c in wanted))


class UnifiedGroup(CgroupGroup):
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path, limits: Limits) -> UnifiedGroup:
        group = cls(path)
        path.mkdir(exist_ok=True)
        try:
            group.apply(limits)
        except BaseException:
            group.remove()
            raise
        return group

    def apply(self, limits: Limits) -> None:
        self._write("memory.max", str(limits.memory_mib * 1024 * 1024))
        if (self.path / "memory.swap.max").exists():  # no escape into swap
            self._write("memory.swap.max", "0")
        self._write("pids.max", str(limits.pids))
        self._write("cpu.max", f"{int(limits.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")

    def procs_files(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    def directories(self) -> list[Path]:
        return [self.path]

    def _write(self, file: str, value: str) -> None:
        target = self.path / file
        if not target.exists():  # a limit file appears only with its controller enabled
            controller = file.split(".", 1)[0]
            raise SandboxUnavailable(
                f"cgroup v2 group {self.path} has no {file}: the {controller} controller is not "
                "enabled for it, so the sandbox's limits cannot be applied"
            )
        target.write_text(value)

    def _keyed(self, file: str) -> dict[str, int]:
        """A flat keyed file (`cgroup.events`, `cpu.stat`, `memory.events`) as a dict."""
        pairs = (line.split() for line in (self.path / file).read_text().splitlines())
        return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2}

    def _request_frozen(self, frozen: bool) -> None:
        self._write("cgroup.freeze", "1" if frozen else "0")

    def _reached(self, frozen: bool) -> bool:
        return self._keyed("cgroup.events").get("frozen") == int(frozen)

    def frozen(self) -> bool:
        return (self.path / "cgroup.freeze").read_text().strip() == "1"

    def cpu_seconds(self) -> float:
        return self._keyed("cpu.stat")["usage_usec"] / 1e6

    def memory_bytes(self) -> int:
        return int((self.path / "memory.current").read_text())

    def oom_kills(self) -> int:
        try:
            return self._keyed("memory.events").get("oom_kill", 0)
        except FileNotFoundError:  # no memory controller in this group
            return 0

    def pids(self) -> list[int]:
        """Processes of the group and of its child groups."""
        found: list[int] = []
        for procs in self.path.glob("**/cgroup.procs"):
            with contextlib.suppress(FileNotFoundError):
                found += [int(pid) for pid in procs.read_text().split()]
        return sorted(set(found))

    def _populated(self) -> bool:
        try:
            return self._keyed("cgroup.events").get("populated", 0) == 1
        except FileNotFoundError:
            return False

    def kill_all(self) -> None:
        if not self.path.exists():
            return
        if (self.path / "cgroup.kill").exists():  # Linux >= 5.14: one write kills the subtree
            self._write("cgroup.kill", "1")
        else:
            self.freeze_blocking(True)
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.freeze_blocking(False)
        with contextlib.suppress(TimeoutError):  # a task stuck in the kernel: rmdir will say so
            wait_blocking(lambda: not self._populated(), EMPTY_TIMEOUT_S, "killing the processes")
