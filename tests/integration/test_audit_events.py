"""The run engine's security events reach the tenant's signed audit trail: every policy decision
on a tool call, approvals requested and decided, and caps that ended a run — and the trail still
verifies afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import StewardProcess


@pytest.fixture
def http(server: StewardProcess, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"x-api-key": api_key}, timeout=30) as http:
        yield http


def audit_records(http: httpx.Client, run_id: str, kind: str, count: int) -> list[dict[str, Any]]:
    """The run's audit records of `kind`, once at least `count` are written (they are queued)."""
    found: list[dict[str, Any]] = []
    for _ in range(200):
        records = http.get("/admin/audit/export").json()["records"]
        found = [r for r in records if r["kind"] == kind and run_id in str(r.get("data", r))]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} {kind} records for run {run_id}, found {found}")


def test_tool_decisions_and_an_approval_are_in_the_audit_trail(http: httpx.Client) -> None:
    tid = http.post("/threads", json={}).json()["thread_id"]
    paused = http.post(
        f"/threads/{tid}/runs/wait", json={"assistant_id": "approver", "input": {"amount": 4}}
    ).json()
    interrupt = paused["__interrupt__"][0]
    run_id = interrupt["value"]["run_id"]
    decided = http.post(f"/runs/{run_id}/approvals/{interrupt['id']}", json={"decision": "approve"})
    assert decided.status_code == 200
    assert http.get(f"/threads/{tid}/runs/{run_id}/join").json()["outcome"] == "done"

    requested = audit_records(http, run_id, "approval.requested", 1)
    assert interrupt["id"] in str(requested[0])
    approved = audit_records(http, run_id, "approval.decided", 1)
    assert "approved" in str(approved[0])
    decisions = audit_records(http, run_id, "policy.tool_decision", 3)
    tools = [str(d) for d in decisions]
    assert sum("record_step" in d for d in tools) == 2 and sum("transfer" in d for d in tools) == 1

    verified = http.get("/admin/audit/verify").json()
    assert verified["ok"] is True and verified["first_bad"] is None


def test_a_cap_that_ends_a_run_is_audited(http: httpx.Client) -> None:
    run = http.post("/runs/wait", json={"assistant_id": "runaway", "input": {}})
    assert run.json()["__error__"]["stop_reason"] == "max_steps"
    run_id = run.headers["content-location"].rsplit("/", 1)[-1]
    (hit,) = audit_records(http, run_id, "cap.hit", 1)
    assert "max_steps" in str(hit)
