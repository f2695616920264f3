"""Threads through the stock `langgraph-sdk`: conversation state across runs, the four
`multitask_strategy` options for a second run on a busy thread, search/update/delete, state and
history, and resumable streams (`Last-Event-ID`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.conftest import StewardProcess
from tests.integration.test_langgraph_sdk import ENDED, eventually, ledger_for


@pytest.fixture
async def client(server: StewardProcess, api_key: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server.url, api_key=api_key)
    yield client
    await client.aclose()


async def _ended(client: LangGraphClient, thread_id: str, run_id: str) -> dict[str, Any] | None:
    run = await client.runs.get(thread_id, run_id)
    return dict(run) if run["status"] in ENDED else None


async def test_runs_on_a_thread_see_its_conversation_state(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    for text in ("first", "second", "third"):
        await client.runs.wait(thread["thread_id"], "notebook", input={"text": text})

    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"notes": ["first", "second", "third"]}
    history = await client.threads.get_history(thread["thread_id"], limit=5)
    assert [h["values"]["notes"][-1] for h in history] == ["third", "second", "first"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_reject_refuses_a_second_run_while_the_first_runs(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(
        thread["thread_id"], "notebook", input={"text": "slow", "sleep_s": 1.0}
    )
    with pytest.raises(ConflictError):
        await client.runs.create(
            thread["thread_id"], "notebook", input={"text": "x"}, multitask_strategy="reject"
        )
    await client.runs.join(thread["thread_id"], first["run_id"])
    assert (await client.threads.get_state(thread["thread_id"]))["values"] == {"notes": ["slow"]}


async def test_enqueue_runs_each_queued_run_in_order_after_the_active_one(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "notebook", input={"text": "a", "sleep_s": 0.5})
    queued = [
        await client.runs.create(tid, "notebook", input={"text": t}, multitask_strategy="enqueue")
        for t in ("b", "c", "d")
    ]
    assert all(run["status"] == "pending" for run in queued)

    for run in [first, *queued]:
        assert (await client.runs.join(tid, run["run_id"]))["notes"][-1] in "abcd"
    state = await client.threads.get_state(tid)
    assert state["values"] == {"notes": ["a", "b", "c", "d"]}  # in order, none lost
    for run in queued:
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_interrupt_cancels_the_active_run_and_starts_the_new_one(
    client: LangGraphClient, server: StewardProcess
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "notebook", input={"text": "old", "sleep_s": 30})
    await eventually(lambda: _has_ledger(server, first["run_id"]), "the first run to start")
    second = await client.runs.create(
        tid, "notebook", input={"text": "new"}, multitask_strategy="interrupt"
    )

    assert (await client.runs.join(tid, second["run_id"])) == {"notes": ["new"]}
    old = await client.runs.get(tid, first["run_id"])
    assert old["status"] == "interrupted"
    assert old["stop_reason"] == "cancelled"


async def test_rollback_cancels_and_deletes_the_active_run(
    client: LangGraphClient, server: StewardProcess
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "notebook", input={"text": "old", "sleep_s": 30})
    await eventually(lambda: _has_ledger(server, first["run_id"]), "the first run to start")
    second = await client.runs.create(
        tid, "notebook", input={"text": "new"}, multitask_strategy="rollback"
    )

    assert (await client.runs.join(tid, second["run_id"])) == {"notes": ["new"]}
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, first["run_id"])
    assert [r["run_id"] for r in await client.runs.list(tid)] == [second["run_id"]]


async def test_cancel_of_the_active_run_starts_the_queued_one(
    client: LangGraphClient, server: StewardProcess
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "notebook", input={"text": "a", "sleep_s": 30})
    await eventually(lambda: _has_ledger(server, first["run_id"]), "the first run to start")
    queued = await client.runs.create(
        tid, "notebook", input={"text": "b"}, multitask_strategy="enqueue"
    )
    await client.runs.cancel(tid, first["run_id"])

    assert await client.runs.join(tid, queued["run_id"]) == {"notes": ["b"]}


async def _has_ledger(server: StewardProcess, run_id: str) -> bool:
    return bool(ledger_for(server, run_id))


async def test_threads_search_update_and_delete(client: LangGraphClient) -> None:
    tag = f"search-{id(client)}"
    made = [
        await client.threads.create(metadata={"tag": tag, "n": n, "user": "ann" if n else "bob"})
        for n in range(3)
    ]
    found = await client.threads.search(metadata={"tag": tag, "user": "ann"}, limit=10)
    assert {t["thread_id"] for t in found} == {made[1]["thread_id"], made[2]["thread_id"]}
    page = await client.threads.search(metadata={"tag": tag}, limit=2, offset=1)
    assert [t["thread_id"] for t in page] == [made[1]["thread_id"], made[0]["thread_id"]]

    updated = await client.threads.update(made[0]["thread_id"], metadata={"user": "cy"})
    assert updated["metadata"] == {"tag": tag, "n": 0, "user": "cy"}

    await client.runs.wait(made[2]["thread_id"], "notebook", input={"text": "x"})
    await client.threads.delete(made[2]["thread_id"])
    with pytest.raises(NotFoundError):
        await client.threads.get(made[2]["thread_id"])
    assert await client.threads.search(metadata={"tag": tag, "n": 2}) == []


async def test_thread_state_can_be_replaced_between_runs(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.threads.update_state(tid, {"notes": ["seeded"]})
    assert await client.runs.wait(tid, "notebook", input={"text": "next"}) == {
        "notes": ["seeded", "next"]
    }


async def test_thread_state_cannot_be_replaced_while_a_run_holds_it(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "notebook", input={"text": "a", "sleep_s": 1})
    with pytest.raises(ConflictError):
        await client.threads.update_state(tid, {"notes": []})
    await client.runs.join(tid, run["run_id"])


# -- resumable streams -------------------------------------------------------------------------


def _sse_events(text: str) -> list[tuple[str | None, str, Any]]:
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return events


async def test_join_stream_with_last_event_id_replays_only_what_came_after(
    client: LangGraphClient, server: StewardProcess, api_key: str
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "multistep", input={"steps": 4}, stream_mode=["updates", "values"]
    )
    await client.runs.join(tid, run["run_id"])
    url = f"{server.url}/threads/{tid}/runs/{run['run_id']}/stream"
    headers = {"x-api-key": api_key}

    async with httpx.AsyncClient(timeout=30) as http:
        whole = _sse_events((await http.get(url, headers=headers)).text)
        ids = [event_id for event_id, _, _ in whole]
        assert all(ids) and ids == sorted(ids, key=int)
        tool_updates = [data for _, event, data in whole if event == "updates" and "tool" in data]
        assert [update["tool"]["result"] for update in tool_updates] == [0, 1, 2, 3]
        assert whole[-1][1] == "values"

        cut = whole[1][0]
        rest = _sse_events(
            (await http.get(url, headers={**headers, "Last-Event-ID": str(cut)})).text
        )
    assert rest == whole[2:]


async def test_sdk_stream_carries_event_ids_and_a_reconnect_location(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    seen = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "multistep",
            input={"steps": 2},
            stream_mode="updates",
            stream_resumable=True,
        )
    ]
    assert seen[0].event == "metadata"
    assert {p.event for p in seen[1:]} == {"updates"}
    assert [p.data["tool"]["result"] for p in seen if "tool" in (p.data or {})] == [0, 1]


async def test_bad_last_event_id_is_a_clear_400(
    client: LangGraphClient, server: StewardProcess, api_key: str
) -> None:
    thread = await client.threads.create()
    run = await client.runs.wait(thread["thread_id"], "notebook", input={"text": "x"})
    runs = await client.runs.list(thread["thread_id"])
    url = f"{server.url}/threads/{thread['thread_id']}/runs/{runs[0]['run_id']}/stream"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url, headers={"x-api-key": api_key, "Last-Event-ID": "abc"})
    assert run == {"notes": ["x"]}
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_concurrent_enqueues_all_run_exactly_once(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    runs = await asyncio.gather(
        *(
            client.runs.create(
                tid, "notebook", input={"text": f"n{i}"}, multitask_strategy="enqueue"
            )
            for i in range(8)
        )
    )
    for run in runs:
        await client.runs.join(tid, run["run_id"])
    notes = (await client.threads.get_state(tid))["values"]["notes"]
    assert sorted(notes) == sorted(f"n{i}" for i in range(8))
    assert len(notes) == 8
