"""The stock `langgraph-sdk` async client drives a real `steward dev` server unmodified.

Runs (wait, stream, background, join, cancel), threads, assistants, the step and wall-time caps,
and the run trace API, all through the paths and shapes LangGraph Platform's clients expect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.conftest import StewardProcess

ORDER_QUESTION = {"message": "Where is my order 42?"}
ENDED = {"success", "error", "timeout", "interrupted", "limit_exceeded"}
T = TypeVar("T")


@pytest.fixture
async def client(server: StewardProcess, api_key: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server.url, api_key=api_key)
    yield client
    await client.aclose()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 30
) -> T:
    """Poll `probe` until it returns something truthy; fail after a bounded deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def ledger_for(server: StewardProcess, run_id: str) -> list[dict[str, Any]]:
    return [line for line in server.ledger_lines() if line["run_id"] == run_id]


def assert_answers_order_42(output: Any) -> None:
    assert isinstance(output, dict), output
    assert "42" in output["answer"]
    assert "shipped" in output["answer"]
    assert output["tools_used"] == ["lookup_order"]


# -- wait --------------------------------------------------------------------------------------


async def test_stateless_wait_answers_with_the_order_lookup(client: LangGraphClient) -> None:
    output = await client.runs.wait(None, "support", input=ORDER_QUESTION)

    assert_answers_order_42(output)


async def test_thread_wait_answers_and_leaves_the_output_on_the_thread(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()

    output = await client.runs.wait(thread["thread_id"], "support", input=ORDER_QUESTION)

    assert_answers_order_42(output)
    after = await client.threads.get(thread["thread_id"])
    assert after["status"] == "idle"
    assert after["values"] == output
    (run,) = await client.runs.list(thread["thread_id"])
    assert run["status"] == "success"
    assert run["assistant_id"] == "support"


# -- stream ------------------------------------------------------------------------------------


async def test_stream_opens_with_run_metadata_and_ends_with_the_output(
    client: LangGraphClient,
) -> None:
    parts = [part async for part in client.runs.stream(None, "support", input=ORDER_QUESTION)]

    assert parts[0].event == "metadata"
    run_id = parts[0].data["run_id"]
    assert run_id
    assert {part.event for part in parts} == {"metadata", "values"}  # only the modes asked for
    assert parts[-1].event == "values"
    assert_answers_order_42(parts[-1].data)
    run = await client.runs.get(parts[0].data["thread_id"], run_id)
    assert run["status"] == "success"
    assert run["output"] == parts[-1].data


async def test_stream_of_updates_shows_the_tool_step_before_the_final_values(
    client: LangGraphClient,
) -> None:
    parts = [
        part
        async for part in client.runs.stream(
            None, "support", input=ORDER_QUESTION, stream_mode=["updates", "values"]
        )
    ]

    assert parts[0].event == "metadata"
    updates = [part.data for part in parts if part.event == "updates"]
    tool_steps = [update["tool"] for update in updates if "tool" in update]
    assert [step["name"] for step in tool_steps] == ["lookup_order"]
    assert tool_steps[0]["result"]["order_id"] == 42
    assert tool_steps[0]["result"]["status"] == "shipped"
    assert any("model" in update for update in updates)
    assert parts[-1].event == "values"
    assert_answers_order_42(parts[-1].data)


# -- background, join, cancel ------------------------------------------------------------------


async def test_background_run_is_polled_to_success_then_joined_for_its_output(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]

    created = await client.runs.create(thread_id, "support", input=ORDER_QUESTION)
    assert created["thread_id"] == thread_id
    assert created["status"] in ("pending", "running")

    async def succeeded() -> dict[str, Any] | None:
        run = await client.runs.get(thread_id, created["run_id"])
        assert run["status"] in ("pending", "running", "success"), run
        return dict(run) if run["status"] == "success" else None

    finished = await eventually(succeeded, "the background run to succeed")
    joined = await client.runs.join(thread_id, created["run_id"])

    assert_answers_order_42(joined)
    assert finished["output"] == joined


async def test_cancelled_run_ends_interrupted_and_stops_taking_steps(
    client: LangGraphClient, server: StewardProcess
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    run = await client.runs.create(thread_id, "multistep", input={"steps": 50, "sleep_s": 0.2})
    run_id = run["run_id"]

    async def two_steps_taken() -> bool:
        return len(ledger_for(server, run_id)) >= 2

    await eventually(two_steps_taken, "the run to take two steps")
    await client.runs.cancel(thread_id, run_id, wait=True)

    cancelled = await client.runs.get(thread_id, run_id)
    assert cancelled["status"] == "interrupted"
    assert cancelled["stop_reason"] == "cancelled"
    steps_at_cancel = len(ledger_for(server, run_id))
    # No event marks "nothing happened": give a live run time for several more 0.2 s steps.
    await asyncio.sleep(1.0)
    assert len(ledger_for(server, run_id)) == steps_at_cancel
    assert steps_at_cancel < 50
    joined = await client.runs.join(thread_id, run_id)
    assert joined["__error__"]["status"] == "interrupted"
    assert joined["__error__"]["stop_reason"] == "cancelled"


async def test_join_on_a_failing_run_returns_the_error_shape(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "broken", input={})

    joined = await client.runs.join(thread["thread_id"], run["run_id"])

    error = joined["__error__"]
    assert error["error"] == "RuntimeError"
    assert error["message"] == "the agent's own bug"
    assert error["status"] == "error"
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "error"


async def test_wait_on_a_failing_run_answers_the_error_shape_which_the_sdk_raises(
    client: LangGraphClient,
) -> None:
    answered = await client.runs.wait(None, "broken", input={}, raise_error=False)
    assert answered["__error__"]["error"] == "RuntimeError"

    with pytest.raises(Exception, match=r"^RuntimeError: the agent's own bug$"):
        await client.runs.wait(None, "broken", input={})


# -- threads and assistants --------------------------------------------------------------------


async def test_created_thread_reads_back_with_its_metadata(client: LangGraphClient) -> None:
    created = await client.threads.create(metadata={"customer": "c-42"})

    read = await client.threads.get(created["thread_id"])

    assert read["thread_id"] == created["thread_id"]
    assert read["metadata"] == {"customer": "c-42"}
    assert read["status"] == "idle"
    assert read["created_at"] == created["created_at"]


async def test_assistant_search_lists_every_served_agent(client: LangGraphClient) -> None:
    assistants = await client.assistants.search(limit=100)  # LangGraph's default page is 10

    names = {assistant["assistant_id"] for assistant in assistants}
    assert {"support", "research", "multistep", "runaway", "sleeper", "broken"} <= names
    support = next(a for a in assistants if a["assistant_id"] == "support")
    assert support["graph_id"] == "support"
    assert support["metadata"]["limits"]["max_steps"] == 12


# -- caps --------------------------------------------------------------------------------------


async def test_runaway_agent_is_stopped_by_the_step_cap_after_five_steps(
    client: LangGraphClient, server: StewardProcess
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "runaway", input={})

    joined = await client.runs.join(thread["thread_id"], run["run_id"])

    assert joined["__error__"]["status"] == "limit_exceeded"
    ended = await client.runs.get(thread["thread_id"], run["run_id"])
    assert ended["status"] == "limit_exceeded"
    assert ended["stop_reason"] == "max_steps"
    assert len(ledger_for(server, run["run_id"])) == 5


async def test_sleeper_agent_is_stopped_by_its_wall_time_cap(
    client: LangGraphClient, server: StewardProcess
) -> None:
    thread = await client.threads.create()
    started = time.monotonic()
    run = await client.runs.create(
        thread["thread_id"], "sleeper", input={"steps": 10, "sleep_s": 0.4}
    )

    joined = await client.runs.join(thread["thread_id"], run["run_id"])

    assert time.monotonic() - started < 4.0  # not the 4 s the ten steps would take
    assert joined["__error__"]["status"] == "timeout"
    ended = await client.runs.get(thread["thread_id"], run["run_id"])
    assert ended["status"] == "timeout"
    assert ended["stop_reason"] == "wall_time"
    assert 1 <= len(ledger_for(server, run["run_id"])) < 10


# -- traces ------------------------------------------------------------------------------------


async def test_run_trace_holds_genai_spans_for_agent_model_and_tool(
    client: LangGraphClient, server: StewardProcess, api_key: str
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "support", input=ORDER_QUESTION)
    assert_answers_order_42(await client.runs.join(thread["thread_id"], run["run_id"]))

    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": api_key}) as http:
        response = await http.get(f"/runs/{run['run_id']}/trace")

    assert response.status_code == 200
    spans = response.json()["spans"]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    assert set(by_name) == {"invoke_agent support", "chat dev", "execute_tool lookup_order"}

    (agent,) = by_name["invoke_agent support"]
    assert agent["parent_span_id"] is None
    assert agent["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert agent["attributes"]["gen_ai.agent.name"] == "support"
    assert agent["attributes"]["gen_ai.conversation.id"] == thread["thread_id"]
    assert "gen_ai.usage.input_tokens" not in agent["attributes"]

    chats = by_name["chat dev"]
    assert len(chats) == 2  # decide to call the tool, then answer
    for chat in chats:
        assert chat["parent_span_id"] == agent["span_id"]
        assert chat["attributes"]["gen_ai.operation.name"] == "chat"
        assert chat["attributes"]["gen_ai.request.model"] == "dev"
        assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
        assert chat["attributes"]["gen_ai.usage.output_tokens"] > 0
        assert "gen_ai.tool.name" not in chat["attributes"]

    (tool,) = by_name["execute_tool lookup_order"]
    assert tool["parent_span_id"] == agent["span_id"]
    assert tool["attributes"]["gen_ai.operation.name"] == "execute_tool"
    assert tool["attributes"]["gen_ai.tool.name"] == "lookup_order"
    assert "gen_ai.usage.input_tokens" not in tool["attributes"]
    assert {span["trace_id"] for span in spans} == {agent["trace_id"]}
