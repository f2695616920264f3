"""`ctx.memory` on real SQLite (sqlite-vec + FTS5) and PostgreSQL (pgvector HNSW + full text),
one suite parametrized over both, with the real local embedding model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from steward.memory.privacy import MemoryRefused
from steward.memory.service import MemoryService, index_path
from steward.memory.tables import MemoryOutboxRow, MemorySubjectRow
from steward.store import migrate
from steward.store.database import Database
from steward.store.hot import HotState, MemoryHotState
from steward.store.hot_redis import RedisHotState
from steward.store.items import ItemStore
from steward.store.platform_tables import StoreItemRow

CASES = json.loads((Path(__file__).parents[1] / "data" / "memory_recall.json").read_text())["cases"]
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return f"sqlite:///{tmp_path / 'steward.db'}"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    migrate.upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
async def service(db: Database) -> AsyncIterator[MemoryService]:
    svc = MemoryService(db, ItemStore(db), MemoryHotState())
    yield svc
    svc.close()


def count_rows(db: Database, table: type) -> int:
    from sqlalchemy import func, select

    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


async def test_right_memory_is_in_the_top_3_for_at_least_90_percent_of_50_queries(
    service: MemoryService,
) -> None:
    memory = service.for_tenant("default")
    ids = [await memory.remember(case["memory"], {"case": n}) for n, case in enumerate(CASES)]
    hits = 0
    misses = []
    for n, case in enumerate(CASES):
        found = await memory.recall(case["query"], k=3)
        if ids[n] in [m.id for m in found]:
            hits += 1
        else:
            misses.append(case["query"])
    assert len(CASES) == 50
    assert hits / len(CASES) >= 0.9, f"{hits}/50 in the top 3; missed: {misses}"


async def test_recall_filters_by_metadata_and_namespace_and_never_crosses_tenants(
    service: MemoryService,
) -> None:
    mine = service.for_tenant("default")
    theirs = service.for_tenant("other")
    await mine.remember("The office wifi password rotates every Monday", {"kind": "it"}, ("work",))
    await mine.remember(
        "The office coffee machine is on the second floor", {"kind": "facilities"}, ("work",)
    )
    await mine.remember("My home router sits in the hallway", {"kind": "it"}, ("home",))
    await theirs.remember("The office wifi is managed by Acme", {"kind": "it"}, ("work",))

    it = await mine.recall("office wifi", k=5, filter={"kind": "it"})
    assert {m.text for m in it} == {
        "The office wifi password rotates every Monday",
        "My home router sits in the hallway",
    }
    work = await mine.recall("office", k=5, namespace=("work",))
    assert {m.namespace for m in work} == {("work",)}
    assert all("Acme" not in m.text for m in await mine.recall("Acme wifi", k=10))
    assert [m.text for m in await theirs.recall("wifi", k=10)] == [
        "The office wifi is managed by Acme"
    ]


async def test_planted_email_card_and_api_key_never_reach_the_index(
    service: MemoryService,
) -> None:
    memory = service.for_tenant("default", end_user="u1")
    planted = [
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "sk-proj-abcdefghijklmnopqrstuvwx1234",
    ]
    await memory.remember(
        f"Reach Jane at {planted[0]}, she paid with {planted[1]} and her key is {planted[2]}",
        {"note": f"backup mail {planted[0]}"},
    )
    # The LangGraph store path writes a memory-shaped item unscrubbed: the indexer scrubs it.
    service.items.put(
        "default", ("memories",), "raw", {"kind": "memory", "text": f"raw {planted[2]}"}
    )
    await service.semantic().drain()

    index = service.semantic().index
    stored = index.raw_rows("default")  # type: ignore[attr-defined]
    assert len(stored) == 2
    for text in stored:
        for value in planted:
            assert value not in text
    recalled = await memory.recall("Jane payment card key", k=5)
    blob = json.dumps([m.to_json() for m in recalled])
    assert "[REDACTED:email]" in blob and "[REDACTED:card_number]" in blob
    for value in planted:
        assert value not in blob
    item = service.items.get("default", ("memories",), recalled[0].id)
    assert item is not None and all(v not in json.dumps(item.value) for v in planted)


async def test_refuse_mode_stores_nothing(db: Database) -> None:
    svc = MemoryService(db, ItemStore(db), MemoryHotState(), privacy_mode="refuse")
    try:
        with pytest.raises(MemoryRefused) as refused:
            await svc.for_tenant("default").remember("write to me at joe@example.org")
        assert refused.value.kinds == ["email"]
        assert svc.semantic().index.count() == 0
        assert count_rows(db, StoreItemRow) == 0
    finally:
        svc.close()


async def test_secret_store_values_are_scrubbed(db: Database) -> None:
    svc = MemoryService(
        db, ItemStore(db), MemoryHotState(), secret_values=lambda tenant: ["plum-velvet-0042"]
    )
    try:
        memory = svc.for_tenant("default")
        await memory.remember("the vault phrase is plum-velvet-0042, keep it safe")
        (found,) = await memory.recall("vault phrase", k=1)
        assert "plum-velvet-0042" not in found.text and "[REDACTED:secret]" in found.text
    finally:
        svc.close()


@pytest.mark.parametrize("hot_kind", ["memory", "redis"])
async def test_erasure_by_end_user_leaves_nothing_in_any_layer(db: Database, hot_kind: str) -> None:
    hot: HotState = (
        MemoryHotState()
        if hot_kind == "memory"
        else RedisHotState(REDIS_URL, prefix=f"memtest:{os.getpid()}:")
    )
    svc = MemoryService(db, ItemStore(db), hot)
    try:
        alice = svc.for_tenant("default", end_user="alice")
        bob = svc.for_tenant("default", end_user="bob")
        for who in (alice, bob):
            await who.remember(f"{who.end_user} likes sailing on the lake", {"who": who.end_user})
            await who.remember(
                f"{who.end_user} lives near the harbour", namespace=("people", "notes")
            )
            await who.records.put(("profiles",), f"{who.end_user}-profile", {"name": who.end_user})
            await who.session.set("cart", {"items": 3}, ttl_s=600)
            await who.session.incr("visits", 2, ttl_s=600)

        assert await alice.forget_user() == 3 + 2  # three durable items, a value and a counter

        index = svc.semantic().index
        assert all("alice" not in text for text in index.raw_rows("default"))  # type: ignore[attr-defined]
        assert index.count("default") == 2
        assert await alice.records.get(("profiles",), "alice-profile") is None
        assert [i.key for i in await alice.records.search(())] == [
            i.key for i in await bob.records.search(()) if "alice" not in json.dumps(i.value)
        ]
        assert all(
            "alice" not in json.dumps(i.value) for i in await bob.records.search((), limit=100)
        )
        assert (
            await alice.session.get("cart") is None and await alice.session.counter("visits") == 0
        )
        assert count_rows(db, MemoryOutboxRow) == 0
        with db.session() as s:
            from sqlalchemy import select

            assert s.scalars(select(MemorySubjectRow.end_user)).all().count("alice") == 0
        # Bob is untouched.
        assert (
            await bob.session.get("cart") == {"items": 3}
            and await bob.session.counter("visits") == 2
        )
        assert [m.text for m in await bob.recall("sailing", k=1)] == [
            "bob likes sailing on the lake"
        ]
        if hot_kind == "redis":
            client = redis.Redis.from_url(REDIS_URL)
            try:
                assert not [k for k in client.scan_iter(match=f"memtest:{os.getpid()}:*alice*")]
            finally:
                client.close()
    finally:
        await svc.hot.drop_sessions("")
        await hot.aclose()
        svc.close()


async def test_forget_by_id_and_by_namespace(service: MemoryService) -> None:
    memory = service.for_tenant("default")
    keep = await memory.remember("Paris is the capital of France", namespace=("geo", "europe"))
    drop = await memory.remember("Lima is the capital of Peru", namespace=("geo", "america"))
    other = await memory.remember("Bread needs flour, water and salt", namespace=("food",))
    assert await memory.forget(drop, ("geo", "america")) is True
    assert drop not in [m.id for m in await memory.recall("capital of Peru", k=5)]
    assert await memory.forget_namespace(("geo",)) == 1
    assert [m.id for m in await memory.recall("capital city", k=5)] == [other]
    assert keep not in [m.id for m in await memory.recall("Paris France", k=5)]
    assert service.semantic().index.count("default") == 1


async def test_the_langgraph_store_sees_memories_as_items(service: MemoryService) -> None:
    memory = service.for_tenant("default")
    memory_id = await memory.remember("The garage code changes in May", {"source": "chat"})
    item = service.items.get("default", ("memories",), memory_id)
    assert item is not None
    assert item.value["text"] == "The garage code changes in May"
    # Deleting it through the store (as `DELETE /store/items` does) removes it from the index.
    service.items.delete("default", ("memories",), memory_id)
    await service.semantic().drain()
    assert service.semantic().index.count("default") == 0


CRASHING_WRITER = """
import asyncio, sys, time
from steward.models.embeddings import LocalEmbedder
from steward.memory.service import MemoryService
from steward.store.database import Database
from steward.store.hot import MemoryHotState
from steward.store.items import ItemStore


class StuckEmbedder(LocalEmbedder):
    # The process is SIGKILLed while it embeds: after the durable commit, before the index write.
    async def embed(self, texts):
        print("durable-written", flush=True)
        await asyncio.sleep(3600)


db = Database(sys.argv[1])
svc = MemoryService(db, ItemStore(db), MemoryHotState(), embedder_factory=StuckEmbedder)
asyncio.run(svc.for_tenant("default").remember("The spare key is under the blue flowerpot"))
"""


def kill_writer_between_writes(script: Path, database_url: str) -> tuple[str, int, bool]:
    """Run the writer, SIGKILL it once it reports the durable write; (its line, exit code,
    whether the SQLite index file exists)."""
    script.write_text(CRASHING_WRITER)
    writer = subprocess.Popen(
        [sys.executable, str(script), database_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline().strip()
        writer.send_signal(signal.SIGKILL)
        return line, writer.wait(), os.path.exists(index_path(database_url))
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()


async def test_sigkill_between_durable_write_and_index_write_is_repaired_on_restart(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    line, code, index_file_exists = kill_writer_between_writes(tmp_path / "writer.py", database_url)
    assert (line, code) == ("durable-written", -signal.SIGKILL)

    # The durable record and its outbox entry were committed; the index never got the memory.
    assert count_rows(db, StoreItemRow) == 1
    assert count_rows(db, MemoryOutboxRow) == 1
    svc = MemoryService(db, ItemStore(db), MemoryHotState())
    try:
        assert index_file_exists or not db.is_sqlite
        assert svc.semantic().index.count("default") == 0
        # The next start repairs it.
        assert await svc.repair() == 1
        assert count_rows(db, MemoryOutboxRow) == 0
        (found,) = await svc.for_tenant("default").recall("where is the spare key?", k=1)
        assert found.text == "The spare key is under the blue flowerpot"
        assert await svc.repair() == 0
    finally:
        svc.close()


async def test_the_store_search_query_ranks_items_by_meaning(service: MemoryService) -> None:
    from steward.memory.store_ranker import StoreRanker

    memory = service.for_tenant("default")
    await memory.remember("We moved the team offsite to the mountains", namespace=("docs",))
    service.items.put("default", ("docs",), "a", {"text": "Quarterly revenue grew by ten percent"})
    service.items.put("default", ("docs",), "b", {"title": "Pasta recipe with fresh tomatoes"})
    service.items.index = StoreRanker(service)
    ranked = service.items.search("default", ("docs",), query="cooking dinner", limit=3)
    assert ranked[0].key == "b"
    assert all(i.score is not None for i in ranked)
    assert [i.score for i in ranked] == sorted((i.score or 0.0 for i in ranked), reverse=True)
    top = service.items.search("default", ("docs",), query="company earnings", limit=1)
    assert [i.key for i in top] == ["a"]
