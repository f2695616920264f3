"""Runs inside a gVisor sandbox: load the seccomp filter on itself, then run a Python script.

`runsc` (2022 builds, until gVisor PR 12692) applies the OCI `linux.seccomp` section only to the
container's first process, not to processes `runsc exec` starts, so every exec goes through
this script: the filter (the same BPF bwrap loads) holds for the script and every process it
starts. The script runs in this interpreter rather than by execve: a second Python start costs
~100 ms under gVisor. Stdlib only: `python -I -S seccomp_exec.py FILTER_FILE SCRIPT ARGS...`.
"""

from __future__ import annotations

import ctypes
import runpy
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
    sys.argv = argv[2:]
    runpy.run_path(argv[2], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
