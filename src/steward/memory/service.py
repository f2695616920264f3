"""The memory layers of one process, built on first use, and `ctx.memory`: the tenant-scoped
interface agents see (session values, durable records, semantic memory)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steward.durable.types import JsonObject
from steward.memory.privacy import PrivacyFilter, SecretValues
from steward.memory.records import RecordMemory
from steward.memory.semantic import DEFAULT_NAMESPACE, OutboxWriter, SemanticMemory
from steward.memory.session import SessionMemory, user_prefix
from steward.memory.tables import MemoryOutboxRow
from steward.memory.types import Memory, VectorIndex
from steward.models.embeddings import Embedder, LocalEmbedder
from steward.store.database import Database
from steward.store.hot import HotState
from steward.store.items import ItemStore

if TYPE_CHECKING:
    from steward.security.secrets import SecretStore

log = logging.getLogger(__name__)
Effect = Callable[[str, Callable[[], Awaitable[JsonObject]]], Awaitable[JsonObject]]


def index_path(database_url: str) -> str:
    """The SQLite file of the embedded semantic index, beside the main database."""
    path = database_url.split("///", 1)[-1]
    return ":memory:" if not path or path == ":memory:" else str(Path(path)) + ".memory-index"


def open_index(db: Database, dimensions: int) -> VectorIndex:
    if db.is_sqlite:
        from steward.memory.index_sqlite import SqliteVecIndex

        return SqliteVecIndex(index_path(db.url), dimensions)
    from steward.memory.index_pg import PgVectorIndex

    return PgVectorIndex(db, dimensions)


@dataclass
class MemoryService:
    """Everything `ctx.memory` needs; the semantic layer (model + index) loads on first use."""

    db: Database
    items: ItemStore
    hot: HotState
    embedder_factory: Callable[[], Embedder] = LocalEmbedder
    privacy_mode: str = "scrub"
    secret_values: SecretValues | None = None

    def __post_init__(self) -> None:
        self._semantic: SemanticMemory | None = None
        self._lock = threading.Lock()
        self._outbox = OutboxWriter(self.items)

    def semantic(self) -> SemanticMemory:
        with self._lock:
            if self._semantic is None:
                embedder = self.embedder_factory()
                self._semantic = SemanticMemory(
                    self.db,
                    self.items,
                    open_index(self.db, embedder.dimensions),
                    embedder,
                    PrivacyFilter(mode=self.privacy_mode, secret_values=self.secret_values),
                    self._outbox,
                )
            return self._semantic

    async def repair(self) -> int:
        """At start: apply the outbox entries a killed process left (none: nothing loads)."""
        if not await asyncio.to_thread(_has_pending, self.db):
            return 0
        semantic = await asyncio.to_thread(self.semantic)
        return await semantic.drain()

    async def forget_user(self, tenant_id: str, end_user: str) -> int:
        """Right to erasure: the user's durable items, their memories in the index and their
        session values and counters."""
        deleted = await (await asyncio.to_thread(self.semantic)).forget_user(tenant_id, end_user)
        deleted += await self.hot.drop_sessions(user_prefix(tenant_id, end_user))
        return deleted

    def for_tenant(
        self, tenant_id: str, end_user: str | None = None, effect: Effect | None = None
    ) -> TenantMemory:
        return TenantMemory(self, tenant_id, end_user, effect)

    def close(self) -> None:
        if self._semantic is not None:
            self._semantic.index.close()


def secret_values_from(store: SecretStore) -> SecretValues:
    """The tenant's secret values, for scrubbing (read unaudited: they never leave the filter)."""

    def values(tenant_id: str) -> list[str]:
        return [
            store.reveal(tenant_id, info.name, purpose={"use": "memory privacy"}, audited=False)
            for info in store.list(tenant_id)
        ]

    return values


async def repair_memory(service: MemoryService) -> None:
    try:
        repaired = await service.repair()
    except Exception:  # the server keeps serving; the entries stay for the next start
        log.exception("memory outbox repair failed")
        return
    if repaired:
        log.warning("memory outbox: indexed %d entries a stopped process left", repaired)


def _has_pending(db: Database) -> bool:
    from sqlalchemy import select

    with db.session() as s:
        return s.scalars(select(MemoryOutboxRow.id).limit(1)).first() is not None


async def _direct(_name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
    return await fn()


class TenantMemory:
    """`ctx.memory`: one tenant (and, when the run has one, one end user).

    In a run every semantic call is a journaled step: a resumed run gets the recorded answer
    and does not write twice. `session` and `records` are the other two layers.
    """

    def __init__(
        self,
        service: MemoryService,
        tenant_id: str,
        end_user: str | None = None,
        effect: Effect | None = None,
    ) -> None:
        self._service = service
        self.tenant_id = tenant_id
        self.end_user = end_user
        self._effect = effect or _direct
        self.session = SessionMemory(service.hot, tenant_id, end_user)
        self.records = RecordMemory(service.items, tenant_id, end_user)

    async def _semantic(self) -> SemanticMemory:
        return await asyncio.to_thread(self._service.semantic)

    async def remember(
        self,
        text: str,
        metadata: dict[str, Any] | None = None,
        namespace: Sequence[str] = DEFAULT_NAMESPACE,
        *,
        id: str | None = None,
    ) -> str:
        """Store a memory (personal data and secrets scrubbed first); returns its id."""

        async def call() -> JsonObject:
            semantic = await self._semantic()
            memory_id = await semantic.remember(
                self.tenant_id, text, metadata, namespace, end_user=self.end_user, key=id
            )
            return {"id": memory_id}

        return str((await self._effect("memory.remember", call))["id"])

    async def recall(
        self,
        query: str,
        k: int = 5,
        filter: dict[str, Any] | None = None,
        namespace: Sequence[str] | None = None,
    ) -> list[Memory]:
        async def call() -> JsonObject:
            semantic = await self._semantic()
            found = await semantic.recall(self.tenant_id, query, k, filter, namespace)
            return {"memories": [m.to_json() for m in found]}

        answer = await self._effect("memory.recall", call)
        return [Memory.from_json(m) for m in answer["memories"]]

    async def forget(self, id: str, namespace: Sequence[str] = DEFAULT_NAMESPACE) -> bool:
        async def call() -> JsonObject:
            return {"found": await (await self._semantic()).forget(self.tenant_id, id, namespace)}

        return bool((await self._effect("memory.forget", call))["found"])

    async def forget_namespace(self, namespace: Sequence[str]) -> int:
        async def call() -> JsonObject:
            semantic = await self._semantic()
            return {"deleted": await semantic.forget_namespace(self.tenant_id, namespace)}

        return int((await self._effect("memory.forget_namespace", call))["deleted"])

    async def forget_user(self, end_user: str | None = None) -> int:
        """Erase an end user (the run's own by default) from every layer."""
        who = end_user or self.end_user
        if not who:
            raise ValueError("forget_user needs an end user (the run has none)")

        async def call() -> JsonObject:
            return {"deleted": await self._service.forget_user(self.tenant_id, who)}

        return int((await self._effect("memory.forget_user", call))["deleted"])


_installed: list[MemoryService] = []


def install(service: MemoryService) -> None:
    """Make `service` the one agents of this process reach (the runtime calls this at build)."""
    _installed[:] = [service]


def installed() -> MemoryService:
    if not _installed:
        raise RuntimeError("no memory in this process: ctx.memory needs a Steward runtime")
    return _installed[0]
