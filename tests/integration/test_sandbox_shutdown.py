"""A Steward process that ends with a frozen (standby) sandbox and a warm pool leaves nothing
behind: on SIGTERM at once, after SIGKILL at its next start (frozen processes ignore SIGKILL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from steward.sandbox import cgroups
from steward.sandbox.bwrap import RUNTIME_ROOT, BwrapBackend
from tests.conftest import StewardProcess, make_process
from tests.integration.sandbox_support import require_available


@pytest.fixture
def steward(tmp_path: Path) -> Iterator[StewardProcess]:
    require_available("bwrap", BwrapBackend().unavailable_reason())
    process = make_process(tmp_path, STEWARD_SANDBOX_POOL_SIZE="2", STEWARD_SANDBOX_BACKEND="bwrap")
    process.start()
    yield process
    process.stop()


def owned_state_dirs(pid: int) -> list[Path]:
    """The sandbox state dirs (pooled or handed out) that Steward process `pid` made."""
    found = []
    for state in RUNTIME_ROOT.iterdir():
        try:
            owner = json.loads((state / "owner.json").read_text())["owner"]
        except (OSError, ValueError):
            continue
        if owner.endswith(f":{pid}"):
            found.append(state)
    return found


def running(pid: int) -> bool:
    """Alive, zombies aside (killed processes of a pid namespace are reaped by the host's init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def remains(states: list[Path], pids: list[int]) -> list[str]:
    """Processes, cgroups, mounts and directories of these sandboxes that still exist."""
    left = [f"process {pid}" for pid in pids if running(pid)]
    mounts = Path("/proc/self/mounts").read_text()
    for state in states:
        left += [f"dir {state}"] if state.exists() else []
        left += [f"mount {line}" for line in mounts.splitlines() if state.name in line]
        for parent in cgroups.parent_dirs().values():
            group = parent / f"sbx-{state.name}"
            left += [f"cgroup {group}"] if group.exists() else []
    return left


def frozen_sandbox(server: StewardProcess) -> tuple[httpx.Client, str, list[int], list[Path]]:
    """A sandbox with a background process, put to warm standby; its host pids; all state dirs."""
    assert server.proc is not None
    key = server.create_key("shutdown")
    http = httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=60)
    created = http.post("/v1/sandboxes", json={"idle_timeout_s": 3600})
    assert created.status_code == 201, created.text
    sandbox_id = created.json()["id"]
    started = http.post(
        f"/v1/sandboxes/{sandbox_id}/exec", json={"command": "nohup sleep 600 >/dev/null 2>&1 &"}
    )
    assert started.status_code == 200 and started.json()["exit_code"] == 0, started.text
    assert http.post(f"/v1/sandboxes/{sandbox_id}/standby", json={}).status_code == 200
    freezer = cgroups.parent_dirs()["freezer"] / f"sbx-{sandbox_id}"
    assert (freezer / "freezer.state").read_text().strip() == "FROZEN"
    pids = [int(pid) for pid in (freezer / "cgroup.procs").read_text().split()]
    assert len(pids) >= 3  # bwrap, the resident, sleep
    deadline = time.monotonic() + 30
    while len(states := owned_state_dirs(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the pool fills after the first create (one create: one ready)
    assert RUNTIME_ROOT / sandbox_id in states and len(states) == 2, states
    return http, sandbox_id, pids, states


def test_sigterm_with_a_frozen_sandbox_and_a_pool_leaves_nothing(steward: StewardProcess) -> None:
    http, _, pids, states = frozen_sandbox(steward)
    http.close()
    steward.stop()
    assert steward.proc is not None and steward.proc.returncode is not None
    assert remains(states, pids) == []


def test_sigkill_with_a_frozen_sandbox_is_cleaned_up_at_the_next_start(
    steward: StewardProcess,
) -> None:
    http, sandbox_id, pids, states = frozen_sandbox(steward)
    steward.kill()
    # The frozen sandbox cannot act on its death signal: it stays until someone thaws it.
    assert all(running(pid) for pid in pids)
    steward.start()
    assert remains(states, pids) == []
    record = http.get(f"/v1/sandboxes/{sandbox_id}").json()
    http.close()
    assert record["state"] == "failed" and "Steward process ended" in record["reason"]
