"""`syscall_policy.py` written as an OCI `linux.seccomp` section (for gVisor's `--oci-seccomp`).

gVisor's sentry checks the rules in order and takes the first that matches (runsc's
`specutils/seccomp`), so each argument-checked syscall lists its allowed cases before its
refusal; runsc builds of 2022 ignore `errnoRet` and answer EPERM for every refusal.
"""

from __future__ import annotations

import platform
from typing import Any

from steward.sandbox.syscall_policy import (
    ALLOWED,
    ARG_RULES,
    DEFAULT_ERRNO,
    DENIED_ERRNO,
    ArgRule,
    syscall_numbers,
)

ERRNO = "SCMP_ACT_ERRNO"
ALLOW = "SCMP_ACT_ALLOW"


def oci_seccomp(machine: str | None = None) -> dict[str, Any]:
    syscall_numbers(machine or platform.machine())  # refuses an architecture not covered
    rules: list[dict[str, Any]] = []
    for code in sorted(set(DENIED_ERRNO.values())):
        names = sorted(name for name, c in DENIED_ERRNO.items() if c == code)
        rules.append({"names": names, "action": ERRNO, "errnoRet": code})
    for rule in ARG_RULES:
        rules += _arg_rule(rule)
    rules.append({"names": sorted(ALLOWED), "action": ALLOW})
    return {
        "defaultAction": ERRNO,
        "defaultErrnoRet": DEFAULT_ERRNO,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": rules,
    }


def _arg_rule(rule: ArgRule) -> list[dict[str, Any]]:
    names = list(rule.names)
    refuse = {"names": names, "action": ERRNO, "errnoRet": rule.errno_code}
    allow = {"names": names, "action": ALLOW}
    if rule.kind == "allow_if_clear":  # (arg & mask) == 0
        test = {"index": rule.index, "value": rule.mask, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
        return [{**allow, "args": [test]}, refuse]
    cases = [
        {**(allow if rule.kind == "allow_if_in" else refuse), "args": [_equal(rule.index, v)]}
        for v in rule.values
    ]
    return [*cases, refuse if rule.kind == "allow_if_in" else allow]


def _equal(index: int, value: int) -> dict[str, Any]:
    return {"index": index, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}
