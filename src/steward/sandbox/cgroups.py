"""Sandbox cgroups on this host: probe which cgroup version can limit sandboxes, and use it.

cgroup v2 (a delegated subtree with the cpu, memory and pids controllers) is preferred; cgroup
v1 (controllers mounted under /sys/fs/cgroup/<controller>, as on hybrid hosts whose unified
hierarchy has no controllers) is the fallback. Neither: sandboxes refuse to start, saying why.
The implementations live in `cgroup_v1.py` and `cgroup_v2.py` behind `cgroup_base.CgroupGroup`.
Everything here touches only sysfs and returns at once, except `create`, `sweep` and
`remove_everywhere`, which may wait for exiting tasks: call those in a thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from steward.errors import SandboxUnavailable
from steward.sandbox import cgroup_v2
from steward.sandbox.cgroup_base import CgroupGroup, remove_tree
from steward.sandbox.cgroup_v1 import CFS_PERIOD_US, CGROUP_ROOT, CONTROLLERS, CgroupSet
from steward.sandbox.cgroup_v2 import UnifiedGroup
from steward.sandbox.types import Limits

__all__ = [
    "CFS_PERIOD_US",
    "CGROUP_ROOT",
    "CONTROLLERS",
    "GROUP_PARENT",
    "CgroupGroup",
    "CgroupSet",
    "Layout",
    "UnifiedGroup",
]

GROUP_PARENT = "steward-sandboxes"
UNIFIED = "unified"  # the key of a v2 layout's single directory


@dataclass(frozen=True)
class Layout:
    """Where this process's sandbox groups live: `bases` are Steward's own groups (one per v1
    controller, or the v2 one), `parents` the `steward-sandboxes` directories under them."""

    version: Literal[1, 2]
    bases: dict[str, Path]

    @property
    def parents(self) -> dict[str, Path]:
        return {key: base / GROUP_PARENT for key, base in self.bases.items()}

    def group(self, relative: str) -> CgroupGroup:
        """The group at `<base>/<relative>` (which may not exist yet)."""
        if self.version == 2:
            return UnifiedGroup(self.bases[UNIFIED] / relative)
        return CgroupSet({c: base / relative for c, base in self.bases.items()})


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


def detect(mountinfo: str | None = None, proc_cgroup: str | None = None) -> Layout:
    """The layout sandboxes use here; SandboxUnavailable (naming what is missing) if none."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    mount = cgroup_v2.mount_point(mountinfo)
    own = cgroup_v2.own_path(text)
    reasons = []
    if mount is not None and own is not None:
        base = cgroup_v2.base_dir(mount, own)
        missing = cgroup_v2.missing_controllers(base)
        if not missing:
            return Layout(2, {UNIFIED: base})
        reasons.append(f"cgroup v2 at {mount}: controllers {', '.join(missing)} not available")
    else:
        reasons.append("cgroup v2 is not mounted")
    v1_own = own_paths(text)
    absent = [
        c for c in CONTROLLERS if c not in v1_own or not (CGROUP_ROOT / c / "cgroup.procs").exists()
    ]
    if not absent:
        return Layout(1, {c: CGROUP_ROOT / c / v1_own[c].lstrip("/") for c in CONTROLLERS})
    reasons.append(f"cgroup v1 controllers {', '.join(absent)} are not mounted")
    raise SandboxUnavailable("no cgroup hierarchy can limit sandboxes: " + "; ".join(reasons))


def parent_dirs() -> dict[str, Path]:
    """Where this process's sandboxes' groups live (recorded for cleanup after a crash)."""
    return detect().parents


def unavailable_reason() -> str | None:
    try:
        layout = detect()
    except SandboxUnavailable as exc:
        return str(exc)
    for directory in layout.parents.values():
        probe = directory if directory.exists() else directory.parent
        if not os.access(probe, os.W_OK):
            return f"cannot create cgroups under {probe} (run as root or delegate the cgroup)"
    return None


def prepare(relative: str = "") -> Layout:
    """Create `steward-sandboxes[/relative]` (v2: with the controllers enabled for its
    children) and return the layout. Blocks briefly: call it in a thread."""
    layout = detect()
    if layout.version == 2:
        base, parent = layout.bases[UNIFIED], layout.parents[UNIFIED]
        cgroup_v2.delegate(base, parent)
        if relative:
            cgroup_v2.delegate(parent, parent / relative)
        return layout
    for parent in layout.parents.values():
        (parent / relative).mkdir(parents=True, exist_ok=True)
    return layout


def create(name: str, limits: Limits) -> CgroupGroup:
    """A new sandbox group `steward-sandboxes/<name>` with `limits`. Blocks: use a thread."""
    layout = prepare()
    if layout.version == 2:
        return UnifiedGroup.create(layout.parents[UNIFIED] / name, limits)
    return CgroupSet.create({c: parent / name for c, parent in layout.parents.items()}, limits)


def open_group(relative: str) -> CgroupGroup:
    """The (existing or future) group at `steward-sandboxes/<relative>`."""
    return detect().group(f"{GROUP_PARENT}/{relative}")


def sweep(prefix: str) -> int:
    """Remove leftover groups whose name starts with `prefix` (after a crash); returns a count."""
    try:
        layout = detect()
    except SandboxUnavailable:
        return 0
    names = {
        child.name
        for parent in layout.parents.values()
        if parent.exists()
        for child in parent.iterdir()
        if child.is_dir() and child.name.startswith(prefix)
    }
    for name in names:
        layout.group(f"{GROUP_PARENT}/{name}").remove()
    return len(names)


def remove_everywhere(relative: str) -> None:
    """rmdir `relative` (under our own group) and its children in every hierarchy this process
    belongs to: runsc creates its groups in all of them, not only the ones Steward uses."""
    try:
        layout = detect()
    except SandboxUnavailable:
        return
    if layout.version == 2:
        remove_tree(layout.bases[UNIFIED] / relative)
        return
    for controller, own in own_paths().items():
        remove_tree(CGROUP_ROOT / controller / own.lstrip("/") / relative)
