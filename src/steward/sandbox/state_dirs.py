"""Per-sandbox state directories, each naming the Steward process that made it, and the crash
recovery that finds what a dead Steward process left (containers, cgroups, mounts, files)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from steward.errors import SandboxUnavailable
from steward.sandbox import cgroups
from steward.sandbox.bwrap import RUNTIME_ROOT, unmount
from steward.sandbox.records import SandboxRecords
from steward.sandbox.types import SandboxBackend

log = logging.getLogger("steward.sandbox")
OWNER_FILE = "owner.json"  # in each state dir: which Steward process made it (crash recovery)


class StateDirs:
    """Where each sandbox's state lives, claimed before anything else is made for it."""

    def __init__(self, home: Path, owner: str) -> None:
        self.home = home
        self.owner = owner

    def path(self, backend: SandboxBackend, sandbox_id: str) -> Path:
        if backend.isolated:  # the isolating backends run as root and mount under /run
            return RUNTIME_ROOT / sandbox_id
        return self.home / "sandboxes" / sandbox_id

    def claim(self, backend: SandboxBackend, sandbox_id: str) -> Path:
        """Create the state dir with an owner file first: after a crash (even a SIGKILL while a
        sandbox is frozen) the next start finds and removes everything it leads to."""
        state = self.path(backend, sandbox_id)
        state.mkdir(parents=True, mode=0o711, exist_ok=True)
        try:
            parents = {c: str(d) for c, d in cgroups.parent_dirs().items()}
        except SandboxUnavailable:
            parents = {}
        owner = {"owner": self.owner, "cgroup_parents": parents}
        (state / OWNER_FILE).write_text(json.dumps(owner))
        return state

    def reap_orphans(self, records: SandboxRecords) -> None:
        """Fail the records of Steward processes on this host that died; clean up after them.

        Blocking (files, processes, database): run it in a thread."""
        host = socket.gethostname()
        for sandbox_id in records.live_of_owner_prefix(f"{host}:"):
            row = records.find(sandbox_id)
            if row is None or _alive(int(row.owner.rsplit(":", 1)[1])):
                continue
            log.warning("sandbox %s outlived its Steward process; cleaning up", sandbox_id)
            for state in (RUNTIME_ROOT / sandbox_id, self.home / "sandboxes" / sandbox_id):
                parents = (_read_owner(state) or {}).get("cgroup_parents")
                clean_state_dir(state, sandbox_id, parents)
            records.set_state(sandbox_id, "failed", reason="its Steward process ended")
        # Then whatever a dead Steward process left under /run, recorded or not (pooled ones).
        for state in _entries(RUNTIME_ROOT):
            owner = _read_owner(state)
            if owner is None and state.is_dir() and mounts_under(state):
                # The owner file is written before anything is mounted and removed only after
                # everything is unmounted: mounts without it were left by a cleanup that did
                # not know them (an older Steward version on this host).
                log.warning("cleaning up the mounts left under %s", state)
                clean_state_dir(state, state.name)
                continue
            if owner is None or not owner["owner"].startswith(f"{host}:"):
                continue
            if not _alive(int(owner["owner"].rsplit(":", 1)[1])):
                log.warning("cleaning up sandbox %s of a dead Steward process", state.name)
                clean_state_dir(state, state.name, owner.get("cgroup_parents", {}))


def _entries(root: Path) -> list[Path]:
    """The state directories under `root`; none when it is missing or another user's (a root
    Steward's sandboxes on this host are not an unprivileged one's to clean up)."""
    try:
        return list(root.iterdir())
    except FileNotFoundError:
        return []
    except PermissionError:
        log.info("not reaping sandboxes under %s: it belongs to another user", root)
        return []


def remove_tree(path: Path) -> None:
    """`shutil.rmtree` that never raises; blocking, so async callers run it in a thread."""
    shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(state: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads((state / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("owner"), str) else None


def clean_state_dir(
    state: Path, sandbox_id: str, cgroup_parents: dict[str, str] | None = None
) -> None:
    """Undo what a dead process's backend left: containers, cgroups, mounts, files.

    Frozen (standby) processes ignore SIGKILL until thawed, so cgroups are frozen, killed and
    thawed (`CgroupSet.remove`), in the hierarchy places the dead process recorded and ours."""
    runsc_root = state / "runsc"
    if runsc_root.exists():
        subprocess.run(
            ["/usr/bin/runsc", f"--root={runsc_root}", "delete", "-force", f"steward-{sandbox_id}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    if cgroup_parents:
        recorded = {c: Path(parent) / f"sbx-{sandbox_id}" for c, parent in cgroup_parents.items()}
        if set(recorded) == set(cgroups.CONTROLLERS):
            try:
                cgroups.CgroupSet(recorded).remove()
            except Exception:
                log.exception("could not remove the cgroups of sandbox %s", sandbox_id)
    with contextlib.suppress(Exception):
        cgroups.sweep(f"sbx-{sandbox_id}")
        cgroups.remove_everywhere(f"{cgroups.GROUP_PARENT}/gv-{sandbox_id}")
    for mount_point in mounts_under(state):
        unmount(mount_point)
    remove_tree(state)


def mounts_under(directory: Path) -> list[Path]:
    """Mount points below `directory`, deepest first: whatever a Steward version mounted there
    (work, tmp, volumes) is unmounted before its files are removed."""
    prefix = f"{directory}/"
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split(" ")
        if len(fields) < 2:
            continue
        # /proc/self/mounts escapes space, tab, newline and backslash as octal.
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        if target.startswith(prefix):
            found.append(Path(target))
    return sorted(found, key=lambda path: len(path.parts), reverse=True)
