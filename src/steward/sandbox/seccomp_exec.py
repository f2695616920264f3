"""Runs inside a gVisor sandbox: load the seccomp filter on itself, then exec the rest of argv.

`runsc` (2022 builds, until gVisor PR 12692) applies the OCI `linux.seccomp` section only to the
container's first process, not to processes `runsc exec` starts, so every exec goes through
this script: the filter (the same BPF bwrap loads) holds across execve and for all children.
Stdlib only: `python -I -S seccomp_exec.py FILTER_FILE ARGV...`.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main(argv: list[str]) -> None:
    with open(argv[1], "rb") as file:
        program = file.read()
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
    os.execv(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv)
