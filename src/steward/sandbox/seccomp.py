"""The sandbox's seccomp filter: `syscall_policy.py` compiled to a classic-BPF program.

Pure Python rather than a libseccomp binding: the venv needs no system library, and the exact
bytes bwrap loads (`--seccomp FD`) are visible and unit-tested.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

from steward.errors import SandboxUnavailable
from steward.sandbox.syscall_policy import (
    ALLOWED,
    ARG_RULES,
    DEFAULT_ERRNO,
    DENIED_ERRNO,
    ArgRule,
    syscall_numbers,
)

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


@dataclass(frozen=True)
class Insn:
    """One BPF instruction; `jt`/`jf` may name a label, resolved by `assemble` (for JMP_JA,
    `jt` names the target and becomes the unconditional jump's 32-bit `k`)."""

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
        if insn.code == JMP_JA and isinstance(insn.jt, str):
            out += struct.pack("<HBBI", insn.code, 0, 0, labels[insn.jt] - index - 1)
            continue
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


def unavailable_reason(machine: str | None = None) -> str | None:
    """Why no sandbox may start on this machine's architecture (None: the policy covers it)."""
    try:
        syscall_numbers(machine or platform.machine())
    except SandboxUnavailable as exc:
        return str(exc)
    return None


def build_filter(machine: str | None = None) -> bytes:
    """The policy (`syscall_policy.py`) as a BPF program for this machine's architecture.

    Layout: the architecture and x32 checks; one comparison per denied or argument-checked
    syscall, jumping to the short blocks after them (BPF's conditional jumps reach 255
    instructions); then the allow-list in chunks, each ending in its own ALLOW; then the default.
    Allowed syscalls read only the number, so the kernel caches their verdict and skips the
    filter on later calls.
    """
    table = syscall_numbers(machine or platform.machine())
    program: list[Insn | str] = [
        Insn(LD_W_ABS, OFFSET_ARCH),
        Insn(JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, "kill"),
        Insn(LD_W_ABS, OFFSET_NR),
        Insn(
            JMP_JGE_K, X32_SYSCALL_BIT, f"errno{errno.EPERM}", 0
        ),  # the x32 ABI bypasses number checks
    ]
    codes = sorted({*DENIED_ERRNO.values(), *(rule.errno_code for rule in ARG_RULES)})
    program += [
        Insn(JMP_JEQ_K, table[name], f"errno{code}", 0) for name, code in DENIED_ERRNO.items()
    ]
    for index, rule in enumerate(ARG_RULES):
        program += [Insn(JMP_JEQ_K, table[name], f"rule{index}", 0) for name in rule.names]
    program.append(Insn(JMP_JA, jt="allowed"))
    for index, rule in enumerate(ARG_RULES):
        program += [f"rule{index}", *_arg_rule(rule)]
    program += ["allow", _ret(RET_ALLOW)]
    for code in codes:
        program += [f"errno{code}", _ret(_errno(code))]
    program += ["kill", _ret(RET_KILL_PROCESS), "allowed"]
    allowed = sorted(table[name] for name in ALLOWED)
    for start in range(0, len(allowed), ALLOW_CHUNK):
        chunk = allowed[start : start + ALLOW_CHUNK]
        label = f"allow{start}"
        program += [Insn(JMP_JEQ_K, nr, label, 0) for nr in chunk]
        program += [Insn(JMP_JA, jt=f"after{start}"), label, _ret(RET_ALLOW), f"after{start}"]
    program.append(_ret(_errno(DEFAULT_ERRNO)))
    return assemble(program)


ALLOW_CHUNK = 200  # each chunk's jumps reach its own ALLOW within BPF's 255-instruction range


def _arg_rule(rule: ArgRule) -> list[Insn | str]:
    refuse = f"errno{rule.errno_code}"
    load = Insn(LD_W_ABS, offset_arg(rule.index))
    if rule.kind == "allow_if_clear":
        return [load, Insn(JMP_JSET_K, rule.mask, refuse, "allow")]
    if rule.kind == "allow_if_in":
        return [
            load,
            *(Insn(JMP_JEQ_K, v, "allow", 0) for v in rule.values),
            Insn(JMP_JA, jt=refuse),
        ]
    return [load, *(Insn(JMP_JEQ_K, v, refuse, 0) for v in rule.values), Insn(JMP_JA, jt="allow")]
