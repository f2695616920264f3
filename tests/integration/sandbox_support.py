"""Shared set-up for sandbox tests: a real manager on SQLite, and cleanup that cannot be skipped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from steward.sandbox import cgroups
from steward.sandbox.bwrap import RUNTIME_ROOT
from steward.sandbox.manager import Completed, CreateOptions, SandboxManager
from steward.sandbox.types import ExecRequest, Limits
from steward.store import migrate
from steward.store.database import Database
from steward.store.schema import Tenant

TENANT = "tenant-a"
OTHER = "tenant-b"


def claim_state_dir(sandbox_id: str) -> Path:
    """The state dir a test that drives a backend directly uses, with the owner file the
    manager writes (`manager.OWNER_FILE`): other Steward processes on this host clean up state
    dirs without a live owner, and would remove this one under the running test."""
    state = RUNTIME_ROOT / sandbox_id
    state.mkdir(parents=True, mode=0o711)
    owner = {"owner": f"{socket.gethostname()}:{os.getpid()}", "cgroup_parents": {}}
    (state / "owner.json").write_text(json.dumps(owner))
    return state


def require(manager: SandboxManager, backend: str) -> None:
    """Fail, never skip, when the backend cannot run: a skipped isolation test looks green while
    nothing was checked. `scripts/ensure-services` (run by `make test`) installs bwrap and runsc;
    the tests run as root on cgroup v1 or a delegated cgroup v2 subtree."""
    require_available(backend, manager.backends[backend].unavailable_reason())


def require_available(backend: str, reason: str | None) -> None:
    """`require` for tests that reach the backend without a manager (directly or over HTTP)."""
    if reason is not None:
        pytest.fail(f"sandbox backend {backend!r} cannot run on this machine: {reason}")


async def open_manager(tmp_path: Path, **options: bool | int) -> SandboxManager:
    url = f"sqlite:///{tmp_path / 'steward.db'}"
    migrate.upgrade(url)
    db = Database(url)
    with db.session() as session:
        session.add_all([Tenant(id=TENANT, name=TENANT), Tenant(id=OTHER, name=OTHER)])
    manager = SandboxManager(db, tmp_path / "home", **options)  # type: ignore[arg-type]
    await manager.start()
    if manager.pool.size and manager.backends["bwrap"].unavailable_reason() is None:
        await manager.pool.wait_full()
    return manager


def leftovers(manager: SandboxManager, sandbox_ids: list[str]) -> list[str]:
    """Cgroups, mounts and runsc processes a test left behind (must be none)."""
    names = {f"sbx-{i}" for i in sandbox_ids} | {f"gv-{i}" for i in sandbox_ids}
    found: list[str] = []
    for parent in cgroups.parent_dirs().values():
        if parent.exists():
            found += [str(p) for p in parent.iterdir() if p.name in names]
    mounts = Path("/proc/self/mounts").read_text()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    for sandbox_id in sandbox_ids:
        found += [line for line in mounts.splitlines() if sandbox_id in line]
        found += [line for line in ps.stdout.splitlines() if sandbox_id in line]
    return found


async def run(
    manager: SandboxManager,
    sandbox_id: str,
    command: str | list[str],
    *,
    tenant: str = TENANT,
    timeout_s: float = 20.0,
) -> Completed:
    argv = ["sh", "-c", command] if isinstance(command, str) else command
    return await manager.run(tenant, sandbox_id, ExecRequest(argv, {}, "/work", b"", timeout_s))


async def python(manager: SandboxManager, sandbox_id: str, code: str, **kw: float) -> Completed:
    return await run(manager, sandbox_id, ["python3", "-c", code], **kw)  # type: ignore[arg-type]


def options(backend: str, **limits: float) -> CreateOptions:
    return CreateOptions(backend=backend, limits=Limits(**limits), idle_timeout_s=3600)  # type: ignore[arg-type]
