"""Authentication failures in the audit log through a real `steward dev`: a flood of bad
requests becomes one record carrying its count, the open window is written on a clean stop,
and the stop signs the final checkpoint without errors.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import STEWARD, StewardProcess, make_process

FLOOD = 40


def _flood(server: StewardProcess, bad_key: str, count: int) -> None:
    with httpx.Client(base_url=server.url, headers={"x-api-key": bad_key}, timeout=30) as c:
        for n in range(count):
            assert c.get(f"/threads/t{n % 3}").status_code == 401


def _failures(export: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        json.loads(r["entry"])["data"] for r in export["records"] if r["kind"] == "auth.failure"
    ]


def test_a_flood_of_bad_keys_becomes_one_audit_record_with_its_count(tmp_path: Path) -> None:
    server = make_process(tmp_path)
    server.start()
    try:
        admin = server.create_key("admin", role="admin")
        _flood(server, admin[:-1] + ("Z" if admin[-1] != "Z" else "Y"), FLOOD)
        with httpx.Client(base_url=server.url, headers={"x-api-key": admin}, timeout=30) as c:
            export = c.get("/admin/audit/export").json()
            verified = c.get("/admin/audit/verify").json()
    finally:
        server.stop()
    failures = _failures(export)
    assert len(failures) == 1, failures
    (failure,) = failures
    assert failure["count"] == FLOOD
    assert failure["key_prefixes"] == [admin[:17]]
    assert sorted(failure["paths"]) == ["/threads/t0", "/threads/t1", "/threads/t2"]
    assert failure["first_seen"] <= failure["last_seen"]
    assert verified["ok"] is True and verified["signed_records"] == verified["records"]


def _wait_for_first_step(server: StewardProcess) -> None:
    deadline = time.monotonic() + 30
    while not server.ledger_lines():
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


def test_a_clean_stop_writes_the_open_window_and_signs_the_final_checkpoint(
    tmp_path: Path,
) -> None:
    # Checkpoints due all the time, and a run in flight that makes the engine's shutdown last:
    # the background checkpointer is then busy while the durable core closes its thread pool.
    server = make_process(tmp_path, STEWARD_AUDIT_CHECKPOINT_INTERVAL_S="0.05")
    server.start()
    admin = server.create_key("admin", role="admin")
    _flood(server, admin[:-1] + ("Z" if admin[-1] != "Z" else "Y"), 7)
    started = httpx.post(
        f"{server.url}/runs",
        headers={"x-api-key": admin},
        json={"assistant_id": "multistep", "input": {"steps": 20, "sleep_s": 1}},
        timeout=30,
    )
    assert started.status_code == 200, started.text
    _wait_for_first_step(server)
    server.stop()
    # A graceful stop (uvicorn re-raises the SIGTERM it handled), not the SIGKILL after 15 s.
    assert server.proc is not None and server.proc.returncode in (0, -signal.SIGTERM)
    log = server.log.read_text()
    assert "cannot schedule new futures" not in log
    assert "could not sign" not in log
    # `audit verify` adds no checkpoint of its own: every record signed means the stop signed.
    verify = subprocess.run(
        [STEWARD, "audit", "verify", "--tenant", "default"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    export = json.loads(server.cli("audit", "export", "--tenant", "default"))
    records = len(export["records"])
    assert f"{records} records" in verify.stdout and f"{records} signed" in verify.stdout
    assert [f["count"] for f in _failures(export)] == [7]
