"""The seccomp program, run through a small classic-BPF interpreter on synthetic syscalls."""

from __future__ import annotations

import errno
import struct

import pytest

from steward.errors import SandboxUnavailable
from steward.sandbox import seccomp
from steward.sandbox.oci_seccomp import oci_seccomp
from steward.sandbox.seccomp import (
    AUDIT_ARCH_X86_64,
    RET_ALLOW,
    RET_ERRNO,
    RET_KILL_PROCESS,
    build_filter,
    unavailable_reason,
)
from steward.sandbox.syscall_policy import ALLOWED, ARG_RULES, DENIED_ERRNO, NAMESPACE_FLAGS
from steward.sandbox.syscall_table import X86_64

CLONE_THREAD_FLAGS = 0x003D0F00  # what glibc's pthread_create passes
CLONE_NEWUSER = 0x10000000
AF_INET, AF_NETLINK = 2, 16


def run_filter(program: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64, *args: int) -> int:
    """Interpret the opcodes the generator emits over one `struct seccomp_data`."""
    values = [*args, 0, 0, 0, 0, 0, 0][:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *values)
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    for _ in range(len(insns) + 1):
        code, jt, jf, k = insns[pc]
        if code == seccomp.LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == seccomp.RET_K:
            return k
        elif code == seccomp.JMP_JA:
            pc += 1 + k
        elif code in (seccomp.JMP_JEQ_K, seccomp.JMP_JGE_K, seccomp.JMP_JSET_K):
            taken = {
                seccomp.JMP_JEQ_K: acc == k,
                seccomp.JMP_JGE_K: acc >= k,
                seccomp.JMP_JSET_K: bool(acc & k),
            }[code]
            pc += 1 + (jt if taken else jf)
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("the program did not return")


@pytest.fixture(scope="module")
def program() -> bytes:
    return build_filter("x86_64")


def test_ordinary_syscalls_are_allowed(program: bytes) -> None:
    for nr in (0, 1, 2, 57, 59, 61, 231):  # read write open fork execve wait4 exit_group
        assert run_filter(program, nr) == RET_ALLOW
    for name in ALLOWED:
        assert run_filter(program, X86_64[name]) == RET_ALLOW, name


@pytest.mark.parametrize("name", sorted(n for n, code in DENIED_ERRNO.items() if code == 1))
def test_dangerous_syscalls_fail_with_eperm(program: bytes, name: str) -> None:
    assert run_filter(program, X86_64[name]) == RET_ERRNO | errno.EPERM


def test_every_syscall_outside_the_allow_list_is_refused(program: bytes) -> None:
    """An allow-list: nothing passes unless named, including numbers no kernel has yet."""
    checked = {n for rule in ARG_RULES for n in rule.names}
    names = {nr: name for name, nr in X86_64.items()}
    for nr in range(0, 1024):
        if names.get(nr) in {*ALLOWED, *checked}:
            continue
        expected = DENIED_ERRNO.get(names.get(nr, ""), errno.ENOSYS)
        assert run_filter(program, nr) == RET_ERRNO | expected, (nr, names.get(nr))


def test_unlisted_harmless_syscalls_answer_enosys(program: bytes) -> None:
    for name in ("modify_ldt", "sysfs", "ustat", "set_mempolicy", "mbind", "memfd_secret"):
        assert run_filter(program, X86_64[name]) == RET_ERRNO | errno.ENOSYS, name


def test_personality_is_allowed_only_for_the_harmless_personas(program: bytes) -> None:
    nr = X86_64["personality"]
    for persona in (0, 0x8, 0xFFFFFFFF):
        assert run_filter(program, nr, AUDIT_ARCH_X86_64, persona) == RET_ALLOW
    for persona in (0x0040000, 0x0400000):  # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC
        assert run_filter(program, nr, AUDIT_ARCH_X86_64, persona) == RET_ERRNO | errno.EPERM


def test_other_architectures_are_killed(program: bytes) -> None:
    assert run_filter(program, 0, 0x40000003) == RET_KILL_PROCESS  # i386


def test_x32_abi_numbers_are_refused(program: bytes) -> None:
    assert run_filter(program, 0x40000000 + 101) == RET_ERRNO | errno.EPERM


def test_clone3_answers_enosys_so_libc_falls_back_to_clone(program: bytes) -> None:
    assert run_filter(program, 435) == RET_ERRNO | errno.ENOSYS


def test_clone_for_threads_is_allowed_but_not_with_namespace_flags(program: bytes) -> None:
    assert run_filter(program, 56, AUDIT_ARCH_X86_64, CLONE_THREAD_FLAGS) == RET_ALLOW
    new_user = CLONE_THREAD_FLAGS | CLONE_NEWUSER
    assert run_filter(program, 56, AUDIT_ARCH_X86_64, new_user) == RET_ERRNO | errno.EPERM


def test_only_unix_sockets_may_be_created(program: bytes) -> None:
    for nr in (41, 53):  # socket, socketpair
        assert run_filter(program, nr, AUDIT_ARCH_X86_64, 1) == RET_ALLOW
        for family in (AF_INET, AF_NETLINK, 10):
            got = run_filter(program, nr, AUDIT_ARCH_X86_64, family)
            assert got == RET_ERRNO | errno.EAFNOSUPPORT


def test_terminal_injection_ioctl_is_refused(program: bytes) -> None:
    assert run_filter(program, 16, AUDIT_ARCH_X86_64, 0, 0x5412) == RET_ERRNO | errno.EPERM
    assert run_filter(program, 16, AUDIT_ARCH_X86_64, 0, 0x5401) == RET_ALLOW  # TCGETS


def test_architectures_without_a_table_are_refused() -> None:
    with pytest.raises(SandboxUnavailable, match="aarch64"):
        build_filter("aarch64")
    assert "refusing to start" in (unavailable_reason("aarch64") or "")
    assert unavailable_reason("x86_64") is None


def test_the_oci_section_for_gvisor_states_the_same_policy() -> None:
    """gVisor takes the first matching rule: every argument check precedes its fallback."""
    section = oci_seccomp("x86_64")
    assert (section["defaultAction"], section["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 38)
    rules = section["syscalls"]
    unconditional_allow = [r for r in rules if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r]
    allowed = {n for r in unconditional_allow for n in r["names"]}
    assert allowed == set(ALLOWED) | {"ioctl"}  # ioctl: after its two refused requests
    refused = {
        n: r["errnoRet"] for r in rules if "args" not in r and "errnoRet" in r for n in r["names"]
    }
    assert {n: refused[n] for n in DENIED_ERRNO} == DENIED_ERRNO
    clone = [r for r in rules if r["names"] == ["clone"]]
    assert clone == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
            ],
        },
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
    ]
    socket = [r for r in rules if r["names"] == ["socket", "socketpair"]]
    assert [r["action"] for r in socket] == ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"]
    assert socket[0]["args"][0]["value"] == 1 and socket[1]["errnoRet"] == errno.EAFNOSUPPORT
    with pytest.raises(SandboxUnavailable, match="aarch64"):
        oci_seccomp("aarch64")
