"""Runs as root between Steward and bwrap: joins the cgroups, then drops to the sandbox's uid.

Stdlib only (`python -I -S launcher.py CONFIG`). Closes what bwrap alone leaves open: inherited
descriptors, the launcher's environment, root's keyring, the host's uptime, a root host uid.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

TYPE_CHECKING = False  # not importing `typing` saves milliseconds of every sandbox start
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWTIME = 0x80
SYS_KEYCTL = 250  # x86_64
KEYCTL_JOIN_SESSION_KEYRING = 1
PR_SET_DUMPABLE = 4


def launch(config: dict[str, Any]) -> None:
    pid = str(os.getpid())
    for procs in config["cgroup_procs"]:
        with open(procs, "w") as file:
            file.write(pid)
    libc = ctypes.CDLL(None, use_errno=True)
    # A fresh anonymous session keyring: root's keys stay out of reach even if keyctl leaked.
    if libc.syscall(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        raise OSError(ctypes.get_errno(), "keyctl(JOIN_SESSION_KEYRING)")
    # A time namespace whose clocks start at zero hides the host's uptime; exec enters it.
    if libc.unshare(CLONE_NEWTIME) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWTIME)")
    with open("/proc/uptime") as file:
        uptime = int(float(file.read().split()[0]))
    with open("/proc/self/timens_offsets", "w") as file:
        file.write(f"monotonic -{uptime} 0\nboottime -{uptime} 0\n")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    files = int(config["open_files"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    uid, gid = int(config["uid"]), int(config["gid"])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # Changing uid made us non-dumpable, which makes /proc/self/fd root's: bwrap could not
    # follow the O_PATH descriptors it mounts from. The sandbox cannot ptrace us (seccomp, userns).
    if libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")
    keep = sorted(int(fd) for fd in config["keep_fds"])
    low = 3
    for fd in [*keep, 65536]:
        os.closerange(low, fd)
        low = fd + 1
    argv = config["exec"]
    os.execve(argv[0], argv, {})  # an empty environment: bwrap is pid 1 and /proc/1/environ shows


if __name__ == "__main__":
    launch(json.loads(sys.argv[1]))
