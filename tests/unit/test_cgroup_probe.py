"""Choosing the cgroup version from /proc/self/mountinfo and /proc/self/cgroup.

A directory stands in for a delegated cgroup2 mount here (this machine's unified hierarchy has
no controllers); the real hierarchies are exercised in tests/integration/test_cgroups.py.
"""

from __future__ import annotations

from pathlib import Path

from steward.sandbox import cgroup_v2, cgroups

MOUNTINFO = (
    "25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw\n"
    "31 25 0:27 / {mount} rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate\n"
)


def test_a_delegated_v2_subtree_is_preferred_and_the_server_leaf_is_not_the_base(
    tmp_path: Path,
) -> None:
    service = tmp_path / "system.slice" / "steward.service"
    service.mkdir(parents=True)
    (service / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    mountinfo = MOUNTINFO.format(mount=tmp_path)
    for own in ("/system.slice/steward.service", "/system.slice/steward.service/steward-server"):
        layout = cgroups.detect(mountinfo, f"0::{own}\n")
        assert layout.version == 2
        assert layout.parents == {"unified": service / "steward-sandboxes"}
        group = layout.group("steward-sandboxes/sbx-1")
        assert isinstance(group, cgroups.UnifiedGroup)
        assert group.procs_files() == [service / "steward-sandboxes/sbx-1/cgroup.procs"]


def test_a_v2_subtree_without_the_controllers_is_not_chosen(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    assert cgroup_v2.missing_controllers(tmp_path) == ["memory", "pids"]
    assert cgroup_v2.mount_point(MOUNTINFO.format(mount=tmp_path)) == tmp_path
    assert cgroup_v2.own_path("12:pids:/\n0::/user.slice\n") == "/user.slice"
    assert cgroup_v2.mount_point("25 30 0:22 / /sys rw - sysfs sysfs rw\n") is None
