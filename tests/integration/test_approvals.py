"""Human approval: a `needs_approval=True` tool pauses its run in `interrupted`, the pending call
is visible through the API, a person approves (maybe with edited arguments) or rejects, and the
pause survives a killed server. Driven with the stock `langgraph-sdk` and plain HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.conftest import StewardProcess
from tests.integration.test_langgraph_sdk import eventually, ledger_for


@pytest.fixture
async def client(server: StewardProcess, api_key: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server.url, api_key=api_key)
    yield client
    await client.aclose()


@pytest.fixture
async def http(server: StewardProcess, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"x-api-key": api_key}, timeout=30
    ) as http:
        yield http


def transfers(server: StewardProcess, run_id: str) -> list[dict[str, Any]]:
    return [line for line in ledger_for(server, run_id) if line.get("tool") == "transfer"]


async def pause(client: LangGraphClient, amount: int = 10) -> tuple[str, dict[str, Any]]:
    """Start an `approver` run and wait until it is paused; (thread id, the interrupt)."""
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "approver", input={"amount": amount})
    assert list(result) == ["__interrupt__"], result
    (interrupt,) = result["__interrupt__"]
    return thread["thread_id"], interrupt


async def test_a_paused_call_is_visible_on_the_run_the_thread_and_its_approvals(
    client: LangGraphClient, http: httpx.AsyncClient, server: StewardProcess
) -> None:
    tid, interrupt = await pause(client, amount=25)
    pending = interrupt["value"]
    run_id = pending["run_id"]
    assert pending["tool"] == "transfer"
    assert pending["arguments"] == {"amount": 25}
    assert pending["status"] == "pending"

    run = await client.runs.get(tid, run_id)
    assert (run["status"], run["stop_reason"]) == ("interrupted", "awaiting_approval")
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["interrupts"][run_id][0]["id"] == interrupt["id"]
    listed = (await http.get(f"/runs/{run_id}/approvals")).json()
    assert [a["approval_id"] for a in listed] == [interrupt["id"]]
    assert transfers(server, run_id) == []  # nothing ran before the decision


async def test_approving_runs_the_call_once_and_the_run_finishes(
    client: LangGraphClient, http: httpx.AsyncClient, server: StewardProcess
) -> None:
    tid, interrupt = await pause(client)
    run_id = interrupt["value"]["run_id"]
    decided = await http.post(
        f"/runs/{run_id}/approvals/{interrupt['id']}",
        json={"decision": "approve", "comment": "looks right"},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"

    result = await client.runs.join(tid, run_id)
    assert result == {"outcome": "done", "detail": {"transferred": 10}}
    assert len(transfers(server, run_id)) == 1
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_approving_with_edited_arguments_runs_the_edited_call(
    client: LangGraphClient, http: httpx.AsyncClient, server: StewardProcess
) -> None:
    tid, interrupt = await pause(client, amount=500)
    run_id = interrupt["value"]["run_id"]
    url = f"/runs/{run_id}/approvals/{interrupt['id']}"
    invalid = await http.post(url, json={"decision": "approve", "arguments": {"amount": "lots"}})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"

    await http.post(url, json={"decision": "approve", "arguments": {"amount": 50}})
    assert (await client.runs.join(tid, run_id))["detail"] == {"transferred": 50}
    assert [t["amount"] for t in transfers(server, run_id)] == [50]


async def test_rejecting_tells_the_agent_and_never_runs_the_call(
    client: LangGraphClient, http: httpx.AsyncClient, server: StewardProcess
) -> None:
    tid, interrupt = await pause(client)
    run_id = interrupt["value"]["run_id"]
    url = f"/runs/{run_id}/approvals/{interrupt['id']}"
    await http.post(url, json={"decision": "reject", "comment": "not this month"})

    result = await client.runs.join(tid, run_id)
    assert result["outcome"] == "refused"
    assert "rejected" in result["detail"] and "not this month" in result["detail"]
    assert transfers(server, run_id) == []

    again = await http.post(url, json={"decision": "approve"})
    assert again.status_code == 409
    assert again.json()["type"].endswith("/approval-decided")


async def test_langgraph_command_resume_decides_and_follows_the_run(
    client: LangGraphClient, server: StewardProcess
) -> None:
    tid, interrupt = await pause(client)
    result = await client.runs.wait(tid, "approver", command={"resume": "approve"})
    assert result == {"outcome": "done", "detail": {"transferred": 10}}
    assert len(transfers(server, interrupt["value"]["run_id"])) == 1


async def test_a_resumed_stream_continues_after_the_pause(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = [
        part
        async for part in client.runs.stream(
            tid, "approver", input={"amount": 3}, stream_mode=["updates", "values"]
        )
    ]
    assert "__interrupt__" in first[-1].data
    resumed = [
        part
        async for part in client.runs.stream(
            tid,
            "approver",
            command={"resume": {"decision": "approve"}},
            stream_mode=["updates", "values"],
        )
    ]
    events = [p.event for p in resumed]
    assert events[0] == "metadata"
    assert events[-1] == "values"
    assert resumed[-1].data == {"outcome": "done", "detail": {"transferred": 3}}
    assert not any("__interrupt__" in (p.data or {}) for p in resumed[1:])  # no replayed past


async def test_waiting_for_a_person_does_not_count_against_the_wall_time_cap(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    tid, interrupt = await pause(client)  # `approver` has a two-second wall-time cap
    await asyncio.sleep(2.5)
    run_id = interrupt["value"]["run_id"]
    await http.post(f"/runs/{run_id}/approvals/{interrupt['id']}", json={"decision": "approve"})
    assert (await client.runs.join(tid, run_id))["outcome"] == "done"
    assert (await client.runs.get(tid, run_id))["status"] == "success"


async def test_an_undecided_call_expires_as_a_rejection(
    client: LangGraphClient, server: StewardProcess
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "impatient", input={"amount": 1})
    run_id = result["__interrupt__"][0]["value"]["run_id"]
    final = await eventually(
        lambda: _finished(client, tid, run_id), "the approval to expire", timeout_s=20
    )
    assert final["status"] == "success"
    joined = await client.runs.join(tid, run_id)
    assert joined["outcome"] == "refused" and "expired" in joined["detail"]
    assert transfers(server, run_id) == []


async def _finished(client: LangGraphClient, tid: str, run_id: str) -> dict[str, Any] | None:
    run = await client.runs.get(tid, run_id)
    return dict(run) if run["status"] == "success" else None


async def test_cancelling_a_paused_run_frees_its_thread(
    client: LangGraphClient, server: StewardProcess
) -> None:
    tid, interrupt = await pause(client)
    run_id = interrupt["value"]["run_id"]
    await client.runs.cancel(tid, run_id)
    run = await client.runs.get(tid, run_id)
    assert (run["status"], run["stop_reason"]) == ("interrupted", "cancelled")
    second = await client.runs.wait(tid, "notebook", input={"text": "after"})
    assert second == {"notes": ["after"]}
    assert transfers(server, run_id) == []


async def test_unknown_approval_is_404_and_a_bad_decision_is_422(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    tid, interrupt = await pause(client)
    run_id = interrupt["value"]["run_id"]
    missing = await http.post(f"/runs/{run_id}/approvals/{run_id}:99", json={"decision": "approve"})
    assert missing.status_code == 404
    bad = await http.post(f"/runs/{run_id}/approvals/{interrupt['id']}", json={"decision": "maybe"})
    assert bad.status_code == 422
    mixed = await http.post(
        f"/runs/{run_id}/approvals/{interrupt['id']}",
        json={"decision": "reject", "arguments": {"amount": 1}},
    )
    assert mixed.status_code == 422
    await client.runs.cancel(tid, run_id)


def test_a_pause_survives_a_killed_server(fresh_server: StewardProcess) -> None:
    fresh_server.start()
    key = fresh_server.create_key("t")
    with httpx.Client(base_url=fresh_server.url, headers={"x-api-key": key}, timeout=30) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        paused = http.post(
            f"/threads/{tid}/runs/wait", json={"assistant_id": "approver", "input": {"amount": 7}}
        ).json()
    interrupt = paused["__interrupt__"][0]
    run_id = interrupt["value"]["run_id"]

    fresh_server.kill()
    fresh_server.start()
    with httpx.Client(base_url=fresh_server.url, headers={"x-api-key": key}, timeout=30) as http:
        assert http.get(f"/runs/{run_id}").json()["stop_reason"] == "awaiting_approval"
        approval = f"/runs/{run_id}/approvals/{interrupt['id']}"
        decided = http.post(approval, json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        result = http.get(f"/threads/{tid}/runs/{run_id}/join").json()
    assert result == {"outcome": "done", "detail": {"transferred": 7}}
    lines = ledger_for(fresh_server, run_id)
    assert [line.get("tool", line.get("index")) for line in lines] == [0, "transfer", 1]
