"""Semantic memory: `remember` writes a durable record (the long-term store's item) and, in
the same transaction, an outbox entry; the entry is then applied to the vector + keyword index
and deleted. A process killed in between leaves the entry, and `drain` (run at every start)
applies it, so the index and the records never disagree for long.

`recall` is hybrid: nearest vectors and best keyword matches fused by reciprocal rank.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.memory.privacy import PrivacyFilter
from steward.memory.tables import (
    DELETE,
    DELETE_NAMESPACE,
    DELETE_USER,
    UPSERT,
    MemoryOutboxRow,
    MemorySubjectRow,
)
from steward.memory.types import Hit, IndexEntry, Memory, VectorIndex
from steward.models.embeddings import Embedder
from steward.store.database import Database
from steward.store.items import SEPARATOR, ItemStore, matches, validate_namespace
from steward.store.platform_tables import StoreItemRow

log = logging.getLogger(__name__)

KIND = "memory"  # `value["kind"]` of a store item that is a memory
DEFAULT_NAMESPACE = ("memories",)
KEYWORD_BOOST = 0.05  # added to the best keyword match's cosine similarity (see `fuse`)
DRAIN_BATCH = 128


def is_memory(value: dict[str, Any] | None) -> bool:
    return value is not None and value.get("kind") == KIND and isinstance(value.get("text"), str)


class OutboxWriter:
    """Hooked into the long-term store (from process start, before any model loads): every put
    of a memory and every delete adds an outbox entry in the same transaction."""

    def __init__(self, items: ItemStore) -> None:
        self._written = threading.local()  # outbox ids this thread's last write added
        items.listeners.append(self.on_store_write)

    def on_store_write(
        self,
        session: Session,
        tenant_id: str,
        namespace: str,
        key: str,
        value: dict[str, Any] | None,
    ) -> None:
        if value is not None and not is_memory(value):
            return
        row = MemoryOutboxRow(
            tenant_id=tenant_id,
            op=UPSERT if value is not None else DELETE,
            namespace=namespace,
            key=key,
        )
        session.add(row)
        session.flush()
        pending: list[int] = getattr(self._written, "ids", [])
        pending.append(row.id)
        self._written.ids = pending

    def take_written(self) -> list[int]:
        """The ids this thread's writes added since the last call."""
        ids: list[int] = getattr(self._written, "ids", [])
        self._written.ids = []
        return ids


class SemanticMemory:
    def __init__(
        self,
        db: Database,
        items: ItemStore,
        index: VectorIndex,
        embedder: Embedder,
        privacy: PrivacyFilter,
        outbox: OutboxWriter,
    ) -> None:
        if embedder.dimensions != index.dimensions:
            raise ValueError("the embedder's and the index's dimensions differ")
        self.db = db
        self.items = items
        self.index = index
        self.embedder = embedder
        self.privacy = privacy
        self.outbox = outbox

    # -- the write side -----------------------------------------------------------------------

    def _take_written(self) -> list[int]:
        return self.outbox.take_written()

    async def remember(
        self,
        tenant_id: str,
        text: str,
        metadata: dict[str, Any] | None = None,
        namespace: Sequence[str] = DEFAULT_NAMESPACE,
        *,
        end_user: str | None = None,
        key: str | None = None,
    ) -> str:
        """Store a memory (scrubbed first); returns its id. Indexed before this returns."""
        labels = validate_namespace(namespace)
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a memory needs some text")
        value: dict[str, Any] = {
            "kind": KIND,
            "text": self.privacy.clean(tenant_id, text),
            "metadata": self.privacy.clean_json(tenant_id, metadata or {}),
        }
        if end_user is not None:
            value["end_user"] = end_user
        memory_id = key or uuid.uuid4().hex
        ids = await asyncio.to_thread(self._write, tenant_id, labels, memory_id, value, end_user)
        await self.apply(ids)
        return memory_id

    def _write(
        self,
        tenant_id: str,
        labels: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        end_user: str | None,
    ) -> list[int]:
        if end_user is not None:
            record_subject(self.db, tenant_id, end_user, SEPARATOR.join(labels), key)
        self._take_written()
        self.items.put(tenant_id, labels, key, value)
        return self._take_written()

    async def forget(self, tenant_id: str, memory_id: str, namespace: Sequence[str]) -> bool:
        labels = validate_namespace(namespace)

        def run() -> tuple[bool, list[int]]:
            self._take_written()
            found = self.items.delete(tenant_id, labels, memory_id)
            with self.db.session() as s:
                s.execute(
                    delete(MemorySubjectRow).where(
                        MemorySubjectRow.tenant_id == tenant_id,
                        MemorySubjectRow.namespace == SEPARATOR.join(labels),
                        MemorySubjectRow.key == memory_id,
                    )
                )
            return found, self._take_written()

        found, ids = await asyncio.to_thread(run)
        await self.apply(ids)
        return found

    async def forget_namespace(self, tenant_id: str, namespace: Sequence[str]) -> int:
        """Delete every durable item and memory at `namespace` and below it."""
        path = SEPARATOR.join(validate_namespace(namespace))

        def run() -> tuple[int, list[int]]:
            with self.db.session() as s:
                under = or_(
                    StoreItemRow.namespace == path,
                    StoreItemRow.namespace.startswith(path + SEPARATOR, autoescape=True),
                )
                result = s.execute(
                    delete(StoreItemRow).where(StoreItemRow.tenant_id == tenant_id, under)
                )
                s.execute(
                    delete(MemorySubjectRow).where(
                        MemorySubjectRow.tenant_id == tenant_id,
                        or_(
                            MemorySubjectRow.namespace == path,
                            MemorySubjectRow.namespace.startswith(
                                path + SEPARATOR, autoescape=True
                            ),
                        ),
                    )
                )
                row = MemoryOutboxRow(tenant_id=tenant_id, op=DELETE_NAMESPACE, namespace=path)
                s.add(row)
                s.flush()
                return int(getattr(result, "rowcount", 0) or 0), [row.id]

        count, ids = await asyncio.to_thread(run)
        await self.apply(ids)
        return count

    async def forget_user(self, tenant_id: str, end_user: str) -> int:
        """Delete every durable item written for `end_user` and their memories in the index."""

        def run() -> tuple[int, list[int]]:
            with self.db.session() as s:
                owned = s.execute(
                    select(MemorySubjectRow.namespace, MemorySubjectRow.key).where(
                        MemorySubjectRow.tenant_id == tenant_id,
                        MemorySubjectRow.end_user == end_user,
                    )
                ).all()
                deleted = 0
                for namespace, key in owned:
                    result = s.execute(
                        delete(StoreItemRow).where(
                            StoreItemRow.tenant_id == tenant_id,
                            StoreItemRow.namespace == namespace,
                            StoreItemRow.key == key,
                        )
                    )
                    deleted += int(getattr(result, "rowcount", 0) or 0)
                s.execute(
                    delete(MemorySubjectRow).where(
                        MemorySubjectRow.tenant_id == tenant_id,
                        MemorySubjectRow.end_user == end_user,
                    )
                )
                row = MemoryOutboxRow(tenant_id=tenant_id, op=DELETE_USER, end_user=end_user)
                s.add(row)
                s.flush()
                return deleted, [row.id]

        deleted, ids = await asyncio.to_thread(run)
        await self.apply(ids)
        return deleted

    # -- the outbox ---------------------------------------------------------------------------

    async def apply(self, ids: Sequence[int]) -> int:
        """Carry these outbox entries to the index; an entry already applied (gone) is skipped."""
        if not ids:
            return 0
        rows = await asyncio.to_thread(self._load, ids)
        return await self._apply_rows(rows)

    async def drain(self) -> int:
        """Apply every pending outbox entry, oldest first (at start: repairs a crash)."""
        applied = 0
        while True:
            rows = await asyncio.to_thread(self._load, None)
            if not rows:
                return applied
            applied += await self._apply_rows(rows)

    def pending(self) -> int:
        with self.db.session() as s:
            return len(s.scalars(select(MemoryOutboxRow.id)).all())

    def _load(self, ids: Sequence[int] | None) -> list[MemoryOutboxRow]:
        with self.db.session() as s:
            statement = select(MemoryOutboxRow).order_by(MemoryOutboxRow.id)
            if ids is not None:
                statement = statement.where(MemoryOutboxRow.id.in_(list(ids)))
            else:
                statement = statement.limit(DRAIN_BATCH)
            return list(s.scalars(statement))

    async def _apply_rows(self, rows: list[MemoryOutboxRow]) -> int:
        upserts = [r for r in rows if r.op == UPSERT]
        current = await asyncio.to_thread(self._current, upserts)
        texts = [entry[1] for entry in current.values()]
        vectors = (await self.embedder.embed(texts)).vectors if texts else []
        by_row = dict(zip(current, vectors, strict=True))
        await asyncio.to_thread(self._write_index, rows, current, by_row)
        return len(rows)

    def _current(
        self, rows: list[MemoryOutboxRow]
    ) -> dict[int, tuple[MemoryOutboxRow, str, dict[str, Any], str | None]]:
        """The live memory each upsert entry points at (its text scrubbed again: nothing
        reaches the index unchecked, whichever path wrote the record)."""
        found: dict[int, tuple[MemoryOutboxRow, str, dict[str, Any], str | None]] = {}
        for row in rows:
            item = self.items.get(
                row.tenant_id, row.namespace.split(SEPARATOR), row.key, refresh_ttl=False
            )
            if item is None or not is_memory(item.value):
                continue
            value = item.value
            found[row.id] = (
                row,
                self.privacy.clean(row.tenant_id, value["text"]),
                self.privacy.clean_json(row.tenant_id, value.get("metadata") or {}),
                value.get("end_user"),
            )
        return found

    def _write_index(
        self,
        rows: list[MemoryOutboxRow],
        current: dict[int, tuple[MemoryOutboxRow, str, dict[str, Any], str | None]],
        vectors: dict[int, list[float]],
    ) -> None:
        for row in rows:
            if row.op == UPSERT:
                if row.id in current:
                    _, text, metadata, end_user = current[row.id]
                    entry = IndexEntry(
                        row.tenant_id,
                        row.namespace,
                        row.key,
                        text,
                        metadata,
                        end_user,
                        vectors[row.id],
                    )
                    self.index.upsert([entry])
                    # A delete that committed while this entry was embedded wins.
                    if (
                        self.items.get(
                            row.tenant_id,
                            row.namespace.split(SEPARATOR),
                            row.key,
                            refresh_ttl=False,
                        )
                        is None
                    ):
                        self.index.delete(row.tenant_id, row.namespace, row.key)
                else:
                    self.index.delete(row.tenant_id, row.namespace, row.key)
            elif row.op == DELETE:
                self.index.delete(row.tenant_id, row.namespace, row.key)
            elif row.op == DELETE_NAMESPACE:
                self.index.delete_namespace(row.tenant_id, row.namespace)
            elif row.op == DELETE_USER and row.end_user is not None:
                self.index.delete_user(row.tenant_id, row.end_user)
        with self.db.session() as s:
            s.execute(delete(MemoryOutboxRow).where(MemoryOutboxRow.id.in_([r.id for r in rows])))

    # -- the read side ------------------------------------------------------------------------

    async def recall(
        self,
        tenant_id: str,
        query: str,
        k: int = 5,
        filter: dict[str, Any] | None = None,
        namespace: Sequence[str] | None = None,
    ) -> list[Memory]:
        """The `k` memories closest to `query` (by meaning and by keyword), best first; `filter`
        matches their metadata as the store's search filter does."""
        if k < 1:
            raise ValueError("k is at least 1")
        path = SEPARATOR.join(validate_namespace(namespace)) if namespace else None
        vector = (await self.embedder.embed([query])).vectors[0]
        return await asyncio.to_thread(self._recall, tenant_id, query, vector, k, filter, path)

    def _recall(
        self,
        tenant_id: str,
        query: str,
        vector: list[float],
        k: int,
        filter: dict[str, Any] | None,
        path: str | None,
    ) -> list[Memory]:
        depth = max(4 * k, 20)
        while True:
            near = self.index.nearest(tenant_id, vector, depth, path)
            words = self.index.keyword(tenant_id, query, depth, path)
            fused = fuse(near, words)
            kept = [(score, hit) for score, hit in fused if matches(hit.metadata, filter)]
            exhausted = len(near) < depth and len(words) < depth
            if len(kept) >= k or exhausted or depth >= 4096:
                break
            depth *= 4
        return [
            Memory(
                id=hit.key,
                namespace=tuple(hit.namespace.split(SEPARATOR)),
                text=hit.text,
                metadata=hit.metadata,
                score=round(score, 6),
            )
            for score, hit in kept[:k]
        ]


def fuse(near: list[Hit], words: list[Hit]) -> list[tuple[float, Hit]]:
    """Meaning first, keywords as a bounded boost: cosine similarity plus `KEYWORD_BOOST`
    divided by (1 + keyword rank). Reciprocal-rank fusion let any keyword hit outrank the
    nearest memory (ranks below the top are nearly flat); a bounded boost only reorders
    memories whose meaning is close, and still surfaces an exact term (a name, a code) that
    the embedding missed."""
    similarity: dict[tuple[str, str], float] = {}
    hits: dict[tuple[str, str], Hit] = {}
    for hit in near:
        ident = (hit.namespace, hit.key)
        similarity[ident] = 1.0 - (hit.distance if hit.distance is not None else 1.0)
        hits[ident] = hit
    floor = min(similarity.values(), default=0.0)  # keyword-only hits rank as the farthest
    scores = dict(similarity)
    for rank, hit in enumerate(words):
        ident = (hit.namespace, hit.key)
        scores[ident] = scores.get(ident, floor) + KEYWORD_BOOST / (1 + rank)
        hits.setdefault(ident, hit)
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(score, hits[ident]) for ident, score in ordered]


def record_subject(db: Database, tenant_id: str, end_user: str, namespace: str, key: str) -> None:
    """Remember that an item belongs to `end_user` (written before the item: a crash leaves at
    most a row naming nothing, never an item that erasure would miss)."""
    with contextlib.suppress(IntegrityError), db.session() as s:  # a concurrent writer won
        if s.get(MemorySubjectRow, (tenant_id, end_user, namespace, key)) is None:
            s.add(
                MemorySubjectRow(
                    tenant_id=tenant_id, end_user=end_user, namespace=namespace, key=key
                )
            )
