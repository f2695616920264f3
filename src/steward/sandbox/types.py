"""The sandbox contract: what a backend (bwrap, gVisor, plain process) must provide.

A backend starts an `Instance` from a `SandboxSpec`; the manager above it owns tenants, records,
idle standby and file access, so backends only isolate, limit, run and pause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

StandbyMode = Literal["warm", "cold"]
Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class Limits:
    """Per-sandbox limits; every backend enforces each one or refuses to start."""

    memory_mib: int = 256  # resident memory incl. tmpfs pages; OOM kill above it
    pids: int = 64  # processes + threads
    cpus: float = 1.0  # CPU rate (CFS quota)
    cpu_seconds: float | None = None  # total CPU budget over the sandbox's life
    disk_mib: int = 256  # size of the writable work directory
    tmp_mib: int = 64  # size of /tmp
    open_files: int = 256
    exec_timeout_s: float = 30.0  # default wall-time limit of one exec
    max_output_bytes: int = 1_048_576  # per exec and stream; the rest is dropped


@dataclass(frozen=True)
class SandboxSpec:
    id: str
    work_dir: Path  # host directory mounted read-write at /work
    limits: Limits
    env: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, Path] = field(default_factory=dict)  # name -> host dir at /volumes/<name>
    host_uid: int = 65534  # unprivileged host uid the sandbox runs as (one per sandbox)


@dataclass(frozen=True)
class ExecRequest:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/work"
    stdin: bytes = b""
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Output:
    stream: Stream
    data: bytes


@dataclass(frozen=True)
class ExecResult:
    exit_code: int  # negative: killed by that signal
    wall_s: float
    cpu_s: float
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False


ExecEvent = Output | ExecResult


class Instance(Protocol):
    """One started sandbox. `exec` yields output as it comes and ends with one `ExecResult`."""

    def exec(self, request: ExecRequest) -> AsyncIterator[ExecEvent]: ...
    async def standby(self, mode: StandbyMode) -> None: ...
    async def resume(self) -> None: ...
    async def destroy(self) -> None: ...
    def cpu_seconds(self) -> float: ...
    def pids(self) -> list[int]: ...  # host pids of every process of the sandbox


class SandboxBackend(Protocol):
    name: str
    isolated: bool  # False only for the development `process` backend
    standby_modes: tuple[StandbyMode, ...]  # first = what idle standby uses; () = none

    def unavailable_reason(self) -> str | None: ...  # None when it can run here
    async def start(self, spec: SandboxSpec) -> Instance: ...
