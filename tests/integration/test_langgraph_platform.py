"""The stock `langgraph-sdk` async client drives assistants, the store, crons, `threads.copy` and
`threads.count` against a real `steward dev` server, on SQLite and on PostgreSQL.

Every method of `client.assistants`, `client.store` and `client.crons` is called here, with the
arguments a LangGraph user passes, and the answers are checked against LangGraph Platform's
shapes. Bad input answers a precise 4xx problem+json; another tenant sees none of it.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.conftest import (
    POSTGRES_ADMIN_URL,
    ROOT,
    STEWARD,
    StewardProcess,
    make_process,
)

APPS = [str(ROOT / "examples" / "support.py"), str(ROOT / "tests" / "apps" / "platform_app.py")]
ORDER_QUESTION = {"message": "Where is my order 42?"}
EVERY_SECOND = "* * * * * *"  # six fields: the last one is seconds
T = TypeVar("T")


class PlatformServer(StewardProcess):
    """`steward dev` serving the support agent and the store-using `memory` agent."""

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [STEWARD, "dev", *APPS, "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Environment of a server on the given database (a PostgreSQL database of its own)."""
    if request.param == "sqlite":
        yield {}
        return
    name = f"steward_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield {"STEWARD_DATABASE_URL": POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"}
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def platform(
    backend: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformServer]:
    # The default cron poll interval (5 s): a cron made here is seen at once (the route wakes
    # the scheduler) and each later tick on time (it sleeps until the next one).
    base = make_process(tmp_path_factory.mktemp("platform"), **backend)
    process = PlatformServer(home=base.home, port=base.port, env=base.env)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def keys(platform: PlatformServer) -> dict[str, str]:
    return {
        "alpha": platform.create_key("alpha", tenant="alpha"),
        "beta": platform.create_key("beta", tenant="beta"),
    }


@pytest.fixture
async def client(platform: PlatformServer, keys: dict[str, str]) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=platform.url, api_key=keys["alpha"])
    yield client
    await client.aclose()


@pytest.fixture
async def other(platform: PlatformServer, keys: dict[str, str]) -> AsyncIterator[LangGraphClient]:
    """A client of another tenant."""
    client = get_client(url=platform.url, api_key=keys["beta"])
    yield client
    await client.aclose()


@pytest.fixture
async def raw(platform: PlatformServer, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform.url, headers={"x-api-key": keys["alpha"]}, timeout=30
    ) as http:
        yield http


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 60
) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def status_of(exc: pytest.ExceptionInfo[httpx.HTTPStatusError]) -> int:
    return exc.value.response.status_code


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# -- assistants --------------------------------------------------------------------------------


async def test_assistant_create_get_update_versions_latest_delete(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    created = await client.assistants.create(
        "support",
        config={"configurable": {"tone": "formal"}},
        context={"shop": "north"},
        metadata={"team": tag, "stage": "test"},
        name=f"formal-{tag}",
        description="Formal support",
    )
    assert created["graph_id"] == "support"
    assert created["version"] == 1
    assert created["config"] == {"configurable": {"tone": "formal"}}
    assert created["context"] == {"shop": "north"}
    assert created["metadata"] == {"team": tag, "stage": "test"}
    assert created["name"] == f"formal-{tag}"
    assert created["description"] == "Formal support"
    assistant_id = created["assistant_id"]
    assert await client.assistants.get(assistant_id) == created

    again = await client.assistants.create(
        "support", assistant_id=assistant_id, if_exists="do_nothing", name="ignored"
    )
    assert again == created
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.assistants.create("support", assistant_id=assistant_id, if_exists="raise")
    assert status_of(refused) == 409

    updated = await client.assistants.update(
        assistant_id, config={"configurable": {"tone": "casual"}}, metadata={"stage": "live"}
    )
    assert updated["version"] == 2
    assert updated["config"] == {"configurable": {"tone": "casual"}}
    assert updated["metadata"] == {"team": tag, "stage": "live"}  # merged, as LangGraph's
    assert updated["name"] == f"formal-{tag}"
    assert updated["created_at"] == created["created_at"]

    versions = await client.assistants.get_versions(assistant_id)
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["config"] == {"configurable": {"tone": "formal"}}  # never changed
    assert [v["version"] for v in await client.assistants.get_versions(assistant_id, limit=1)] == [
        2
    ]
    live = await client.assistants.get_versions(assistant_id, metadata={"stage": "live"})
    assert [v["version"] for v in live] == [2]

    back = await client.assistants.set_latest(assistant_id, 1)
    assert back["version"] == 1
    assert back["config"] == {"configurable": {"tone": "formal"}}
    assert (await client.assistants.get(assistant_id))["version"] == 1
    with pytest.raises(httpx.HTTPStatusError) as missing_version:
        await client.assistants.set_latest(assistant_id, 7)
    assert status_of(missing_version) == 404

    with pytest.raises(httpx.HTTPStatusError) as hidden:
        await other.assistants.get(assistant_id)
    assert status_of(hidden) == 404

    await client.assistants.delete(assistant_id)
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await client.assistants.get(assistant_id)
    assert status_of(gone) == 404
    with pytest.raises(httpx.HTTPStatusError) as gone_versions:
        await client.assistants.get_versions(assistant_id)
    assert status_of(gone_versions) == 404


async def test_assistant_delete_with_threads_deletes_the_threads_that_name_it(
    client: LangGraphClient,
) -> None:
    created = await client.assistants.create("support", name="with-threads")
    assistant_id = created["assistant_id"]
    mine = await client.threads.create(metadata={"assistant_id": assistant_id})
    kept = await client.threads.create(metadata={"assistant_id": "someone-else"})

    await client.assistants.delete(assistant_id, delete_threads=True)

    with pytest.raises(httpx.HTTPStatusError) as gone:
        await client.threads.get(mine["thread_id"])
    assert status_of(gone) == 404
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]


async def test_assistant_search_and_count_filter_sort_and_page(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    made = [
        await client.assistants.create(
            "support", metadata={"batch": tag, "n": n}, name=f"{tag}-{name}"
        )
        for n, name in enumerate(["carrot", "apple", "banana"])
    ]
    found = await client.assistants.search(metadata={"batch": tag}, limit=10)
    assert [a["assistant_id"] for a in found] == [a["assistant_id"] for a in reversed(made)]
    by_name = await client.assistants.search(
        metadata={"batch": tag}, sort_by="name", sort_order="asc"
    )
    assert [a["name"] for a in by_name] == [f"{tag}-apple", f"{tag}-banana", f"{tag}-carrot"]
    page = await client.assistants.search(
        metadata={"batch": tag}, sort_by="name", sort_order="asc", limit=1, offset=1
    )
    assert [a["name"] for a in page] == [f"{tag}-banana"]
    named = await client.assistants.search(name=f"{tag}-APP")  # case-insensitive part
    assert [a["name"] for a in named] == [f"{tag}-apple"]
    chosen = await client.assistants.search(
        metadata={"batch": tag}, select=["assistant_id", "name"], limit=1
    )
    assert set(chosen[0]) == {"assistant_id", "name"}
    paged = await client.assistants.search(
        metadata={"batch": tag}, limit=2, response_format="object"
    )
    assert len(paged["assistants"]) == 2 and paged["next"] == "2"
    last = await client.assistants.search(
        metadata={"batch": tag}, limit=2, offset=2, response_format="object"
    )
    assert len(last["assistants"]) == 1 and last["next"] is None

    system = await client.assistants.search(graph_id="memory")
    assert [(a["assistant_id"], a["metadata"]["created_by"]) for a in system] == [
        ("memory", "system")
    ]
    assert system[0]["metadata"]["limits"]["max_steps"] > 0
    assert await client.assistants.count(metadata={"batch": tag}) == 3
    assert await client.assistants.count(graph_id="memory") == 1
    assert await client.assistants.count(name=f"{tag}-b") == 1
    assert await other.assistants.count(metadata={"batch": tag}) == 0
    for assistant in made:
        await client.assistants.delete(assistant["assistant_id"])
    assert await client.assistants.count(metadata={"batch": tag}) == 0


async def test_assistant_graph_schemas_and_subgraphs(client: LangGraphClient) -> None:
    created = await client.assistants.create("support", name="drawn")
    graph = await client.assistants.get_graph(created["assistant_id"])
    ids = [node["id"] for node in graph["nodes"]]
    assert ids[0] == "__start__" and ids[-1] == "__end__"
    assert {"model", "lookup_order"} <= set(ids)
    edges = {(edge["source"], edge["target"]) for edge in graph["edges"]}
    assert ("__start__", "model") in edges
    assert ("model", "lookup_order") in edges and ("lookup_order", "model") in edges
    assert ("model", "__end__") in edges
    assert await client.assistants.get_graph("support", xray=True) == graph

    schemas = await client.assistants.get_schemas(created["assistant_id"])
    assert schemas["graph_id"] == "support"
    assert "message" in schemas["input_schema"]["properties"]
    assert "answer" in schemas["output_schema"]["properties"]
    assert set(schemas) >= {"state_schema", "config_schema", "context_schema"}
    assert await client.assistants.get_subgraphs(created["assistant_id"]) == {}
    assert await client.assistants.get_subgraphs("support", namespace="x", recurse=True) == {}
    await client.assistants.delete(created["assistant_id"])


async def test_a_run_names_an_assistant_id_or_a_graph_id(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    created = await client.assistants.create("support", name="runner")
    by_assistant = await client.runs.wait(None, created["assistant_id"], input=ORDER_QUESTION)
    by_graph = await client.runs.wait(None, "support", input=ORDER_QUESTION)
    assert isinstance(by_assistant, dict) and "42" in by_assistant["answer"]
    assert by_assistant == by_graph
    with pytest.raises(httpx.HTTPStatusError) as foreign:
        await other.runs.wait(None, created["assistant_id"], input=ORDER_QUESTION)
    assert status_of(foreign) == 404
    await client.assistants.delete(created["assistant_id"])


async def test_system_assistants_cannot_be_changed_and_unknown_graphs_are_refused(
    client: LangGraphClient, raw: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.HTTPStatusError) as update:
        await client.assistants.update("support", name="mine")
    assert status_of(update) == 409
    with pytest.raises(httpx.HTTPStatusError) as delete:
        await client.assistants.delete("support")
    assert status_of(delete) == 409
    assert [v["version"] for v in await client.assistants.get_versions("support")] == [1]
    assert (await client.assistants.set_latest("support", 1))["assistant_id"] == "support"
    assert_problem(await raw.post("/assistants", json={"graph_id": "nope"}), 404)
    assert_problem(await raw.post("/assistants", json={"config": {}}), 422)
    assert_problem(await raw.post("/assistants/search", json={"limit": 0}), 422)
    assert_problem(await raw.post("/assistants/support/latest", json={"version": 0}), 422)


# -- store -------------------------------------------------------------------------------------


async def test_store_put_get_search_namespaces_delete(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    root = f"users-{uuid.uuid4().hex[:8]}"
    await client.store.put_item([root, "ann", "prefs"], "theme", {"color": "green", "size": 3})
    await client.store.put_item([root, "ann", "prefs"], "font", {"family": "serif", "size": 5})
    await client.store.put_item([root, "bob", "notes"], "n1", {"text": "hello", "size": 1})

    item = await client.store.get_item([root, "ann", "prefs"], "theme")
    assert item["namespace"] == [root, "ann", "prefs"]
    assert item["key"] == "theme"
    assert item["value"] == {"color": "green", "size": 3}
    assert item["created_at"] and item["updated_at"]
    await client.store.put_item([root, "ann", "prefs"], "theme", {"color": "blue", "size": 3})
    replaced = await client.store.get_item([root, "ann", "prefs"], "theme", refresh_ttl=False)
    assert replaced["value"]["color"] == "blue"
    assert replaced["created_at"] == item["created_at"]

    everything = await client.store.search_items([root])
    assert {(tuple(i["namespace"]), i["key"]) for i in everything["items"]} == {
        ((root, "ann", "prefs"), "theme"),
        ((root, "ann", "prefs"), "font"),
        ((root, "bob", "notes"), "n1"),
    }
    assert everything["items"][0]["key"] == "theme"  # newest update first
    ann = await client.store.search_items([root, "ann"])
    assert sorted(i["key"] for i in ann["items"]) == ["font", "theme"]
    big = await client.store.search_items([root], filter={"size": {"$gte": 3}})
    assert sorted(i["key"] for i in big["items"]) == ["font", "theme"]
    exact = await client.store.search_items([root], filter={"color": "blue"})
    assert [i["key"] for i in exact["items"]] == ["theme"]
    paged = await client.store.search_items([root], limit=1, offset=1)
    assert len(paged["items"]) == 1 and paged["items"][0]["key"] != "theme"
    queried = await client.store.search_items([root, "bob"], query="greetings", refresh_ttl=True)
    assert [i["key"] for i in queried["items"]] == ["n1"]  # no index: the query does not filter

    spaces = await client.store.list_namespaces(prefix=[root])
    assert spaces["namespaces"] == [[root, "ann", "prefs"], [root, "bob", "notes"]]
    assert (await client.store.list_namespaces(prefix=[root], max_depth=2))["namespaces"] == [
        [root, "ann"],
        [root, "bob"],
    ]
    assert (await client.store.list_namespaces(prefix=[root], suffix=["notes"]))["namespaces"] == [
        [root, "bob", "notes"]
    ]
    assert (await client.store.list_namespaces(prefix=[root, "*", "prefs"]))["namespaces"] == [
        [root, "ann", "prefs"]
    ]
    assert (await client.store.list_namespaces(prefix=[root], limit=1, offset=1))["namespaces"] == [
        [root, "bob", "notes"]
    ]

    assert (await other.store.search_items([root]))["items"] == []
    with pytest.raises(httpx.HTTPStatusError) as hidden:
        await other.store.get_item([root, "ann", "prefs"], "theme")
    assert status_of(hidden) == 404

    await client.store.delete_item([root, "ann", "prefs"], "theme")
    with pytest.raises(httpx.HTTPStatusError) as deleted:
        await client.store.get_item([root, "ann", "prefs"], "theme")
    assert status_of(deleted) == 404
    await client.store.delete_item([root, "ann", "prefs"], "theme")  # already gone: still 204


async def test_store_items_expire_after_their_ttl(client: LangGraphClient) -> None:
    root = f"ttl-{uuid.uuid4().hex[:8]}"
    await client.store.put_item([root], "short", {"v": 1}, ttl=0.002)  # minutes: ~0.1 s
    await client.store.put_item([root], "long", {"v": 2}, ttl=60)

    async def expired() -> bool:
        # Without refresh_ttl=False each search would renew the short item's 0.1 s TTL, so a
        # probe every 0.1 s could keep it alive forever (a read refreshes, as LangGraph's does).
        found = await client.store.search_items([root], refresh_ttl=False)
        return [i["key"] for i in found["items"]] == ["long"]

    await eventually(expired, "the short-lived item to expire")
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await client.store.get_item([root], "short")
    assert status_of(gone) == 404
    assert (await client.store.get_item([root], "long"))["value"] == {"v": 2}
    assert (await client.store.list_namespaces(prefix=[root]))["namespaces"] == [[root]]


async def test_store_refuses_bad_namespaces_and_values(raw: httpx.AsyncClient) -> None:
    dotted = {"namespace": ["a.b"], "key": "k", "value": {}}
    assert_problem(await raw.put("/store/items", json=dotted), 422)
    assert_problem(
        await raw.put("/store/items", json={"namespace": [], "key": "k", "value": {}}), 422
    )
    assert_problem(await raw.put("/store/items", json={"namespace": ["a"], "key": "k"}), 422)
    bad_value = {"namespace": ["a"], "key": "k", "value": [1, 2]}
    assert_problem(await raw.put("/store/items", json=bad_value), 422)
    wide = "\U0001f600" * 300  # 300 characters, 1,200 UTF-8 bytes
    assert_problem(
        await raw.put("/store/items", json={"namespace": ["a"], "key": wide, "value": {}}), 422
    )
    assert_problem(
        await raw.put("/store/items", json={"namespace": [wide], "key": "k", "value": {}}), 422
    )
    fits = "\U0001f600" * 250  # 1,000 bytes each: the largest namespace and key, on any database
    fitting = {"namespace": [fits], "key": fits, "value": {"ok": True}}
    assert (await raw.put("/store/items", json=fitting)).status_code == 204
    assert (await raw.get("/store/items", params={"namespace": fits, "key": fits})).json()[
        "value"
    ] == {"ok": True}
    bad_ttl = {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}
    assert_problem(await raw.put("/store/items", json=bad_ttl), 422)
    assert_problem(await raw.get("/store/items", params={"namespace": "a..b", "key": "k"}), 422)
    assert_problem(await raw.get("/store/items", params={"namespace": "a"}), 422)
    missing = await raw.get("/store/items", params={"namespace": "nowhere", "key": "k"})
    assert_problem(missing, 404)
    assert_problem(await raw.post("/store/items/search", json={"limit": 0}), 422)
    assert_problem(await raw.post("/store/namespaces", json={"max_depth": 0}), 422)


async def test_agents_use_the_same_store_through_journaled_ctx_store_calls(
    client: LangGraphClient,
) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    await client.store.put_item(["notes", user], "older", {"text": "from the API"})
    thread = await client.threads.create()
    output = await client.runs.wait(
        thread["thread_id"], "memory", input={"user": user, "key": "k1", "text": "from the agent"}
    )
    assert output == {
        "stored": {"text": "from the agent"},
        "notes": ["k1", "older"],
        "scratch_after_delete": None,
    }
    item = await client.store.get_item(["notes", user], "k1")
    assert item["value"] == {"text": "from the agent"}
    (run,) = await client.runs.list(thread["thread_id"])
    assert run["usage"]["steps"] == 6  # every store call is one journaled step


# -- crons -------------------------------------------------------------------------------------


async def test_thread_cron_fires_runs_on_the_thread_then_stops_when_disabled(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(
        thread["thread_id"],
        "support",
        schedule=EVERY_SECOND,
        input=ORDER_QUESTION,
        metadata={"kind": "thread-cron"},
        multitask_strategy="enqueue",
    )
    assert cron["thread_id"] == thread["thread_id"]
    assert cron["assistant_id"] == "support"
    assert cron["schedule"] == EVERY_SECOND
    assert cron["enabled"] is True
    assert cron["payload"]["input"] == ORDER_QUESTION
    assert datetime.fromisoformat(cron["next_run_date"]) > datetime.now(UTC) - timedelta(seconds=2)

    async def two_runs() -> list[Any] | None:
        runs = await client.runs.list(thread["thread_id"], limit=100)
        return runs if len(runs) >= 2 else None

    runs = await eventually(two_runs, "two cron runs on the thread")
    assert {run["metadata"]["cron_id"] for run in runs} == {cron["cron_id"]}
    assert {run["metadata"]["kind"] for run in runs} == {"thread-cron"}
    ticks = [run["metadata"]["cron_tick"] for run in runs]
    assert len(ticks) == len(set(ticks))  # one run per tick

    disabled = await client.crons.update(cron["cron_id"], enabled=False)
    assert disabled["enabled"] is False
    assert await client.crons.count(thread_id=thread["thread_id"]) == 1
    assert await other.crons.count(thread_id=thread["thread_id"]) == 0
    await client.crons.delete(cron["cron_id"])
    assert await client.crons.count(thread_id=thread["thread_id"]) == 0


async def test_stateless_cron_search_count_update_delete(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    end = datetime.now(UTC) + timedelta(days=30)
    first = await client.crons.create(
        "support",
        schedule="0 9 * * *",
        input=ORDER_QUESTION,
        metadata={"batch": tag},
        timezone="America/New_York",
        end_time=end,
        on_run_completed="keep",
    )
    second = await client.crons.create(
        "memory",
        schedule="30 6 * * 1",
        input={"user": "x", "key": "k", "text": "t"},
        metadata={"batch": tag},
        enabled=False,
    )
    assert first["thread_id"] is None
    assert first["timezone"] == "America/New_York"
    assert first["on_run_completed"] == "keep"
    assert datetime.fromisoformat(first["end_time"]) == end
    next_local = datetime.fromisoformat(first["next_run_date"]).astimezone(
        ZoneInfo("America/New_York")
    )
    assert (next_local.hour, next_local.minute) == (9, 0)
    assert second["enabled"] is False

    found = await client.crons.search(metadata={"batch": tag})
    assert [c["cron_id"] for c in found] == [second["cron_id"], first["cron_id"]]
    assert [
        c["cron_id"]
        for c in await client.crons.search(assistant_id="memory", metadata={"batch": tag})
    ] == [second["cron_id"]]
    assert [
        c["cron_id"] for c in await client.crons.search(enabled=False, metadata={"batch": tag})
    ] == [second["cron_id"]]
    by_next = await client.crons.search(
        metadata={"batch": tag}, sort_by="cron_id", sort_order="asc", limit=1, offset=1
    )
    assert [c["cron_id"] for c in by_next] == sorted([first["cron_id"], second["cron_id"]])[1:]
    selected = await client.crons.search(metadata={"batch": tag}, select=["cron_id", "schedule"])
    assert all(set(c) == {"cron_id", "schedule"} for c in selected)
    assert await client.crons.count(metadata={"batch": tag}) == 2
    assert await client.crons.count(assistant_id="support", metadata={"batch": tag}) == 1
    assert await other.crons.count(metadata={"batch": tag}) == 0

    moved = await client.crons.update(
        first["cron_id"],
        schedule="15 7 * * *",
        timezone="UTC",
        end_time=None,
        input={"message": "x"},
    )
    assert moved["schedule"] == "15 7 * * *"
    assert moved["end_time"] is None
    assert moved["payload"]["input"] == {"message": "x"}
    nxt = datetime.fromisoformat(moved["next_run_date"])
    assert (nxt.hour, nxt.minute) == (7, 15)

    with pytest.raises(httpx.HTTPStatusError) as foreign:
        await other.crons.delete(first["cron_id"])
    assert status_of(foreign) == 404
    for cron in (first, second):
        await client.crons.delete(cron["cron_id"])
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await client.crons.delete(first["cron_id"])
    assert status_of(gone) == 404
    assert await client.crons.count(metadata={"batch": tag}) == 0


async def test_crons_refuse_bad_schedules_zones_assistants_and_threads(
    raw: httpx.AsyncClient,
) -> None:
    body = {"assistant_id": "support", "input": ORDER_QUESTION}
    assert_problem(await raw.post("/runs/crons", json={**body, "schedule": "61 * * * *"}), 422)
    assert_problem(await raw.post("/runs/crons", json={**body, "schedule": "* *"}), 422)
    never = {**body, "schedule": "0 0 31 2 *"}  # February 31st: no tick, ever
    assert_problem(await raw.post("/runs/crons", json=never), 422)
    bad_zone = {**body, "schedule": "* * * * *", "timezone": "Mars/Olympus"}
    assert_problem(await raw.post("/runs/crons", json=bad_zone), 422)
    unknown = {**body, "schedule": "* * * * *", "assistant_id": "nope"}
    assert_problem(await raw.post("/runs/crons", json=unknown), 404)
    bad_input = {"assistant_id": "support", "schedule": "* * * * *", "input": {"x": 1}}
    assert_problem(await raw.post("/runs/crons", json=bad_input), 422)
    no_thread = await raw.post("/threads/nope/runs/crons", json={**body, "schedule": "* * * * *"})
    assert_problem(no_thread, 404)
    assert_problem(await raw.patch("/runs/crons/nope", json={"enabled": False}), 404)
    assert_problem(await raw.post("/runs/crons/search", json={"sort_by": "x"}), 422)


# -- threads.copy, threads.count, /info, /ok -------------------------------------------------


async def test_thread_copy_keeps_metadata_values_and_history(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    thread = await client.threads.create(metadata={"copytest": tag})
    output = await client.runs.wait(thread["thread_id"], "support", input=ORDER_QUESTION)

    copy = await client.threads.copy(thread["thread_id"])
    assert copy["thread_id"] != thread["thread_id"]
    assert copy["metadata"] == {"copytest": tag}
    assert copy["values"] == output
    assert copy["status"] == "idle"
    history = await client.threads.get_history(copy["thread_id"])
    assert [state["values"] for state in history] == [output]
    (run,) = await client.runs.list(copy["thread_id"])
    assert run["status"] == "success"
    assert await client.threads.count(metadata={"copytest": tag}) == 2
    assert await client.threads.count(metadata={"copytest": tag}, values=output) == 2
    assert await client.threads.count(metadata={"copytest": tag}, status="busy") == 0
    assert await other.threads.count(metadata={"copytest": tag}) == 0
    with pytest.raises(httpx.HTTPStatusError) as foreign:
        await other.threads.copy(thread["thread_id"])
    assert status_of(foreign) == 404


async def test_info_and_ok_answer_without_a_key(platform: PlatformServer) -> None:
    async with httpx.AsyncClient(base_url=platform.url) as http:
        ok = await http.get("/ok")
        info = await http.get("/info")
    assert ok.json() == {"ok": True}
    body = info.json()
    assert body["version"]
    assert body["flags"]["assistants"] is True and body["flags"]["crons"] is True


def test_a_run_resumed_after_a_crash_replays_its_store_calls_instead_of_repeating_them(
    tmp_path: Path,
) -> None:
    """The server dies while `counter` pauses after read-then-write; after the restart the run
    finishes with the recorded read, and the counter was bumped once, not twice."""
    base = make_process(tmp_path)
    server = PlatformServer(home=base.home, port=base.port, env=base.env)
    server.start()
    try:
        headers = {"x-api-key": server.create_key()}
        put = {"namespace": ["counters"], "key": "c", "value": {"n": 41}}
        assert httpx.put(f"{server.url}/store/items", json=put, headers=headers).status_code == 204
        run = httpx.post(
            f"{server.url}/runs",
            json={"assistant_id": "counter", "input": {"name": "c", "pause_s": 3}},
            headers=headers,
        ).json()
        deadline = time.monotonic() + 30
        while not server.ledger_lines():
            assert time.monotonic() < deadline, "the run never reached its pause"
            time.sleep(0.05)
        server.kill()
        server.start()
        url = f"{server.url}/threads/{run['thread_id']}/runs/{run['run_id']}"
        deadline = time.monotonic() + 60
        while (finished := httpx.get(url, headers=headers).json())["status"] != "success":
            assert time.monotonic() < deadline, f"the resumed run did not finish: {finished}"
            time.sleep(0.1)
        item = httpx.get(
            f"{server.url}/store/items",
            params={"namespace": "counters", "key": "c"},
            headers=headers,
        ).json()
    finally:
        server.stop()
    assert finished["output"] == {"read": 41, "wrote": 42}
    assert item["value"] == {"n": 42}
    assert len({line["pid"] for line in server.ledger_lines()}) == 2  # it really resumed


# -- run config and context --------------------------------------------------------------------


async def test_a_run_sees_the_assistants_config_and_context_merged_with_its_own(
    client: LangGraphClient, other: LangGraphClient
) -> None:
    created = await client.assistants.create(
        "configured",
        config={"tags": ["assistant"], "configurable": {"tone": "formal", "shop": "north"}},
        context={"region": "eu", "tier": "gold"},
        name="configured-run",
    )
    assistant_id = created["assistant_id"]
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"],
        assistant_id,
        input={},
        config={"recursion_limit": 7, "configurable": {"tone": "casual"}},
        context={"tier": "silver"},
    )
    assert run["assistant_id"] == assistant_id  # the stored assistant, not its graph
    assert run["metadata"] == {}  # what Steward records is not the caller's metadata
    expected_config = {
        "tags": ["assistant"],
        "recursion_limit": 7,
        "configurable": {"tone": "casual", "shop": "north"},  # the run's keys win
    }
    expected_context = {"region": "eu", "tier": "silver"}
    assert run["kwargs"]["config"] == expected_config
    assert run["kwargs"]["context"] == expected_context
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result == {
        "config": expected_config,
        "context": expected_context,
        "after_resume": None,
    }
    again = await client.runs.get(thread["thread_id"], run["run_id"])
    assert again["assistant_id"] == assistant_id and again["kwargs"]["config"] == expected_config
    listed = await client.runs.list(thread["thread_id"])
    assert [r["assistant_id"] for r in listed] == [assistant_id]

    # Through the graph id the run has only its own values; without any, empty ones.
    streamed = [
        part
        async for part in client.runs.stream(
            None, "configured", input={}, config={"configurable": {"a": 1}}, context={"b": 2}
        )
    ]
    assert streamed[-1].data == {
        "config": {"configurable": {"a": 1}},
        "context": {"b": 2},
        "after_resume": None,
    }
    bare = await client.runs.wait(None, "configured", input={})
    assert bare == {"config": {}, "context": {}, "after_resume": None}
    # The assistant's own values alone, and its id, through runs.wait.
    only = await client.runs.wait(None, assistant_id, input={})
    assert only == {
        "config": {"tags": ["assistant"], "configurable": {"tone": "formal", "shop": "north"}},
        "context": {"region": "eu", "tier": "gold"},
        "after_resume": None,
    }
    with pytest.raises(httpx.HTTPStatusError) as foreign:
        await other.runs.wait(None, assistant_id, input={}, config={"configurable": {"a": 1}})
    assert status_of(foreign) == 404
    await client.assistants.delete(assistant_id)


async def test_a_resumed_run_sees_the_config_and_context_it_started_with(
    client: LangGraphClient,
) -> None:
    created = await client.assistants.create(
        "configured", config={"configurable": {"tone": "formal"}}, context={"region": "eu"}
    )
    thread = await client.threads.create()
    tid = thread["thread_id"]
    paused = await client.runs.wait(
        tid,
        created["assistant_id"],
        input={"approve_first": True},
        config={"configurable": {"user": "ann"}},
        context={"tier": "gold"},
    )
    assert isinstance(paused, dict) and list(paused) == ["__interrupt__"], paused
    # The resuming request's own config and context do not change the paused run.
    resumed = await client.runs.wait(
        tid,
        created["assistant_id"],
        command={"resume": "approve"},
        config={"configurable": {"user": "bob"}},
        context={"tier": "tin"},
    )
    started = {
        "config": {"configurable": {"tone": "formal", "user": "ann"}},
        "context": {"region": "eu", "tier": "gold"},
    }
    assert resumed == {**started, "after_resume": started}
    await client.assistants.delete(created["assistant_id"])


async def test_run_config_and_context_must_be_objects(raw: httpx.AsyncClient) -> None:
    for field, value in [("config", [1]), ("context", "x"), ("config", {"configurable": 3})]:
        body = {"assistant_id": "configured", "input": {}, field: value}
        problem = assert_problem(await raw.post("/runs/wait", json=body), 422)
        assert field in problem["detail"] or field in str(problem.get("errors")), problem
    cron = {"assistant_id": "configured", "schedule": "0 * * * *", "config": {"configurable": 3}}
    problem = assert_problem(await raw.post("/runs/crons", json=cron), 422)
    assert "configurable" in str(problem), problem


def test_setting_latest_on_a_system_assistant_never_promotes_a_deployed_version(
    platform: PlatformServer, keys: dict[str, str], tmp_path: Path
) -> None:
    """Deployed versions are code every tenant runs: a tenant's `set_latest` cannot make one
    stable (409, naming `steward rollout promote`); it answers the version already stable."""

    def steward(*args: str) -> None:
        done = subprocess.run(
            [STEWARD, *args], cwd=ROOT, env=platform.env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr

    source = (ROOT / "tests" / "apps" / "platform_app.py").read_text()
    for version in (1, 2):
        app = tmp_path / f"released_v{version}.py"
        app.write_text(f"{source}\n# release {version}\n")
        steward("deploy", "--app", str(app), "--agent", "released")

    async def check() -> None:
        async with httpx.AsyncClient(
            base_url=platform.url, headers={"x-api-key": keys["alpha"]}, timeout=30
        ) as raw:
            client = get_client(url=platform.url, api_key=keys["alpha"])
            versions = await client.assistants.get_versions("released")
            assert [v["version"] for v in versions] == [2, 1]
            refused = assert_problem(
                await raw.post("/assistants/released/latest", json={"version": 1}), 409
            )
            assert refused["type"].endswith("/deployed-version")
            assert "steward rollout promote released 1" in refused["detail"]
            with pytest.raises(httpx.HTTPStatusError) as sdk_refused:
                await client.assistants.set_latest("released", 2)
            assert status_of(sdk_refused) == 409
            missing = await raw.post("/assistants/released/latest", json={"version": 9})
            assert_problem(missing, 404)

            steward("rollout", "promote", "released", "2", "--force", "--reason", "test")
            stable = await client.assistants.set_latest("released", 2)
            assert (stable["version"], stable["metadata"]["stable"]) == (2, True)
            still = assert_problem(
                await raw.post("/assistants/released/latest", json={"version": 1}), 409
            )
            assert "steward rollout promote released 1" in still["detail"]
            assert [
                v["metadata"]["stable"] for v in await client.assistants.get_versions("released")
            ] == [True, False]
            await client.aclose()

    asyncio.run(check())


def test_a_run_resumed_after_a_crash_sees_the_config_and_context_it_started_with(
    tmp_path: Path,
) -> None:
    base = make_process(tmp_path)
    server = PlatformServer(home=base.home, port=base.port, env=base.env)
    server.start()
    try:
        headers = {"x-api-key": server.create_key()}
        body = {
            "assistant_id": "configured",
            "input": {"pause_s": 3},
            "config": {"configurable": {"user": "ann"}},
            "context": {"tier": "gold"},
        }
        run = httpx.post(f"{server.url}/runs", json=body, headers=headers).json()
        deadline = time.monotonic() + 30
        while not server.ledger_lines():
            assert time.monotonic() < deadline, "the run never reached its pause"
            time.sleep(0.05)
        server.kill()
        server.start()
        url = f"{server.url}/threads/{run['thread_id']}/runs/{run['run_id']}"
        deadline = time.monotonic() + 60
        while (finished := httpx.get(url, headers=headers).json())["status"] != "success":
            assert time.monotonic() < deadline, f"the resumed run did not finish: {finished}"
            time.sleep(0.1)
    finally:
        server.stop()
    started = {"config": {"configurable": {"user": "ann"}}, "context": {"tier": "gold"}}
    assert finished["output"] == {**started, "after_resume": started}
    assert len({line["pid"] for line in server.ledger_lines()}) == 2  # it really resumed
