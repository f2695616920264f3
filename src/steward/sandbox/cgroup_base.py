"""What a sandbox needs from its cgroup, whichever cgroup version the host runs.

`cgroup_v1.CgroupSet` (one directory per controller) and `cgroup_v2.UnifiedGroup` (one
directory) implement it; `cgroups.py` probes the host and picks one. Waits that happen on the
event loop (freeze, thaw) are async; the ones that can take long (killing, removing) block
and are called in a thread.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from steward.sandbox.types import Limits

FREEZE_TIMEOUT_S = 5.0
EMPTY_TIMEOUT_S = 5.0


class CgroupGroup(ABC):
    """One sandbox's cgroup: limits, accounting, freezer and kill."""

    @abstractmethod
    def apply(self, limits: Limits) -> None:
        """Set memory, pids and CPU rate; also on a running group (a pooled sandbox's hand-out)."""

    @abstractmethod
    def procs_files(self) -> list[Path]:
        """The `cgroup.procs` files a launcher writes its pid into before exec'ing the sandbox."""

    @abstractmethod
    def directories(self) -> list[Path]:
        """Every directory of the group (rmdir'ed by `remove`)."""

    @abstractmethod
    def cpu_seconds(self) -> float:
        """CPU time used by every process of the group and its descendants, ever."""

    @abstractmethod
    def memory_bytes(self) -> int: ...

    @abstractmethod
    def oom_kills(self) -> int: ...

    @abstractmethod
    def pids(self) -> list[int]: ...

    @abstractmethod
    def kill_all(self) -> None:
        """SIGKILL every process (a fork bomb included) and wait until none is left. Blocks:
        call it in a thread from async code."""

    @abstractmethod
    def _request_frozen(self, frozen: bool) -> None: ...

    @abstractmethod
    def frozen(self) -> bool:
        """True once the group has reached (or is reaching) the frozen state."""

    @abstractmethod
    def _reached(self, frozen: bool) -> bool: ...

    async def freeze(self) -> None:
        self._request_frozen(True)
        await _until(lambda: self._reached(True), "the cgroup did not freeze")

    async def thaw(self) -> None:
        self._request_frozen(False)
        await _until(lambda: self._reached(False), "the cgroup did not thaw")

    def freeze_blocking(self, frozen: bool) -> None:
        """Freeze or thaw and wait: for `kill_all` and other code already in a thread."""
        self._request_frozen(frozen)
        wait_blocking(lambda: self._reached(frozen), FREEZE_TIMEOUT_S, "the cgroup freezer")

    def remove(self) -> None:
        """Kill every process, then rmdir the group's directories (deepest first). Blocks."""
        if any(directory.exists() for directory in self.directories()):
            self.kill_all()
        for directory in self.directories():
            remove_tree(directory)


async def _until(reached: Callable[[], bool], message: str) -> None:
    """Poll without blocking the event loop; freezing takes well under a millisecond here."""
    deadline = time.monotonic() + FREEZE_TIMEOUT_S
    delay = 0.0002
    while not reached():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.01)


def wait_blocking(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.0002
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not settle in {timeout_s}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def remove_tree(directory: Path) -> None:
    """rmdir a cgroup directory and its child groups, deepest first. The last exited task may
    still be leaving the group for a moment, so EBUSY is retried briefly. Blocks."""
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.is_dir():
            remove_tree(child)

    def gone() -> bool:
        try:
            directory.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    wait_blocking(gone, 2.0, f"removing {directory}")
