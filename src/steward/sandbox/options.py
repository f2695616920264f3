"""What callers hand the sandbox manager and get back: create options, collected execs, argv.

Kept apart from the manager so tools and routes can build requests without its machinery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from steward.errors import UserError
from steward.sandbox.types import ExecResult, Limits

VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/work", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class CreateOptions:
    backend: str | None = None  # None: the best one available here
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None  # lifetime; None = until deleted
    idle_timeout_s: float = 15.0
    volumes: list[str] = field(default_factory=list)
    run_id: str | None = None

    def check_volumes(self) -> None:
        for name in self.volumes:
            if not VOLUME_NAME.match(name):
                raise UserError(f"volume name {name!r} must match {VOLUME_NAME.pattern}")


@dataclass(frozen=True)
class Completed:
    """An exec collected whole (for JSON answers, tools and journaled steps)."""

    result: ExecResult
    stdout: bytes
    stderr: bytes


def argv_for(
    command: str | list[str] | None, code: str | None, language: str = "python"
) -> list[str]:
    """The argv for a shell command line, an argv list, or a piece of code in `language`."""
    if (command is None) == (code is None):
        raise UserError("give exactly one of `command` or `code`")
    if code is not None:
        interpreter = {"python": ["python3", "-c"], "sh": ["sh", "-c"], "bash": ["bash", "-c"]}
        if language not in interpreter:
            raise UserError(f"language must be one of {sorted(interpreter)}")
        argv = [*interpreter[language], code]
    elif isinstance(command, str):
        argv = ["sh", "-c", command]
    else:
        argv = list(command or [])
    if not argv or not argv[0] or any("\0" in part for part in argv):
        raise UserError("the command is empty or contains a NUL byte")
    return argv
