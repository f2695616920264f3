"""The sandbox's seccomp filter, assembled as a classic-BPF program in pure Python.

Pure Python rather than a libseccomp binding: the program is ~70 instructions, the venv needs no
system library, and the exact bytes bwrap loads (`--seccomp FD`) are visible and unit-tested.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

from steward.errors import SandboxUnavailable

# <linux/bpf_common.h>, <linux/seccomp.h>, <linux/audit.h>
LD_W_ABS = 0x20
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGE_K = 0x35
JMP_JSET_K = 0x45
RET_K = 0x06
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian).
OFFSET_NR = 0
OFFSET_ARCH = 4


def offset_arg(index: int) -> int:
    """Offset of the low 32 bits of syscall argument `index`."""
    return 16 + 8 * index


# x86_64 syscall numbers (<asm/unistd_64.h>). Denied with EPERM: everything that changes
# namespaces or mounts, inspects other processes, loads kernel code or opens kernel attack
# surface rarely needed by user code (io_uring, bpf, userfaultfd, perf, keyrings).
DENIED_X86_64: dict[str, int] = {
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "pidfd_getfd": 438,
    "kcmp": 312,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "move_mount": 429,
    "open_tree": 428,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "unshare": 272,
    "setns": 308,
    "bpf": 321,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "userfaultfd": 323,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "perf_event_open": 298,
    "open_by_handle_at": 304,
    "name_to_handle_at": 303,
    "fanotify_init": 300,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "syslog": 103,
    "acct": 163,
    "quotactl": 179,
    "quotactl_fd": 443,
    "lookup_dcookie": 212,
    "iopl": 172,
    "ioperm": 173,
    "settimeofday": 164,
    "clock_settime": 227,
    "clock_adjtime": 305,
    "adjtimex": 159,
    "vhangup": 153,
    "uselib": 134,
}
CLONE_X86_64 = 56
CLONE3_X86_64 = 435
SOCKET_X86_64 = 41
SOCKETPAIR_X86_64 = 53
IOCTL_X86_64 = 16

# clone(2) flags that create namespaces; 0x80 (CLONE_NEWTIME) is part of clone's exit-signal
# byte, so time namespaces are covered by denying unshare instead.
NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
AF_UNIX = 1
TIOCSTI = 0x5412  # push characters into a terminal's input
TIOCLINUX = 0x541C


@dataclass(frozen=True)
class Insn:
    """One BPF instruction; `jt`/`jf` may name a label, resolved by `assemble`."""

    code: int
    k: int = 0
    jt: int | str = 0
    jf: int | str = 0


def _ret(value: int) -> Insn:
    return Insn(RET_K, value)


def _errno(code: int) -> int:
    return RET_ERRNO | (code & 0xFFFF)


def assemble(program: list[Insn | str]) -> bytes:
    """Resolve labels (strings in the list mark positions) into relative jumps; pack."""
    labels: dict[str, int] = {}
    insns: list[Insn] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for index, insn in enumerate(insns):
        jt, jf = (_jump(index, target, labels) for target in (insn.jt, insn.jf))
        out += struct.pack("<HBBI", insn.code, jt, jf, insn.k & 0xFFFFFFFF)
    return bytes(out)


def _jump(index: int, target: int | str, labels: dict[str, int]) -> int:
    if isinstance(target, int):
        return target
    offset = labels[target] - index - 1
    if not 0 <= offset <= 255:
        raise ValueError(f"BPF jump to {target!r} out of range ({offset})")
    return offset


def build_filter(machine: str | None = None) -> bytes:
    """The filter program for this machine's architecture (x86_64 only, the one tested here)."""
    machine = machine or platform.machine()
    if machine != "x86_64":
        raise SandboxUnavailable(f"no seccomp syscall table for {machine!r} (only x86_64)")
    program: list[Insn | str] = [
        Insn(LD_W_ABS, OFFSET_ARCH),
        Insn(JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, "kill"),
        Insn(LD_W_ABS, OFFSET_NR),
        Insn(JMP_JGE_K, X32_SYSCALL_BIT, "eperm", 0),  # the x32 ABI bypasses number checks
        Insn(JMP_JEQ_K, CLONE3_X86_64, "enosys", 0),  # glibc falls back to clone(2)
        Insn(JMP_JEQ_K, CLONE_X86_64, "clone", 0),
        Insn(JMP_JEQ_K, SOCKET_X86_64, "socket", 0),
        Insn(JMP_JEQ_K, SOCKETPAIR_X86_64, "socket", 0),
        Insn(JMP_JEQ_K, IOCTL_X86_64, "ioctl", 0),
    ]
    program += [Insn(JMP_JEQ_K, nr, "eperm", 0) for nr in DENIED_X86_64.values()]
    program += [
        _ret(RET_ALLOW),
        "clone",
        Insn(LD_W_ABS, offset_arg(0)),
        Insn(JMP_JSET_K, NAMESPACE_FLAGS, "eperm", "allow"),
        "socket",
        Insn(LD_W_ABS, offset_arg(0)),
        Insn(JMP_JEQ_K, AF_UNIX, "allow", 0),
        _ret(_errno(errno.EAFNOSUPPORT)),
        "ioctl",
        Insn(LD_W_ABS, offset_arg(1)),
        Insn(JMP_JEQ_K, TIOCSTI, "eperm", 0),
        Insn(JMP_JEQ_K, TIOCLINUX, "eperm", "allow"),
        "allow",
        _ret(RET_ALLOW),
        "eperm",
        _ret(_errno(errno.EPERM)),
        "enosys",
        _ret(_errno(errno.ENOSYS)),
        "kill",
        _ret(RET_KILL_PROCESS),
    ]
    return assemble(program)
