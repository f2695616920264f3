"""`ctx.store`: the tenant's long-term store inside an agent (LangGraph's `BaseStore` calls).

The same items as `/store/items`, scoped to the run's tenant. Each call is one journaled step
(DESIGN invariant 1), counted against `max_steps` like a sandbox command: a run resumed after a
crash gets the recorded answers back and does not write again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from steward.durable.types import JsonObject
from steward.store.items import Item, ItemStore

# `Context.effect`: runs the call as one journaled step.
Effect = Callable[[str, Callable[[], Awaitable[JsonObject]]], Awaitable[JsonObject]]
_installed: list[ItemStore] = []


def install(store: ItemStore) -> None:
    """Make `store` the one agents of this process reach (the runtime calls this at build)."""
    _installed[:] = [store]


def installed() -> ItemStore:
    if not _installed:
        raise RuntimeError("no store in this process: ctx.store needs a Steward runtime")
    return _installed[0]


class AgentStore:
    def __init__(self, store: ItemStore, tenant_id: str, effect: Effect) -> None:
        self._store = store
        self._tenant_id = tenant_id
        self._effect = effect

    async def get(
        self, namespace: Sequence[str], key: str, *, refresh_ttl: bool = True
    ) -> Item | None:
        async def call() -> JsonObject:
            item = await asyncio.to_thread(
                self._store.get, self._tenant_id, namespace, key, refresh_ttl=refresh_ttl
            )
            return {"item": item.to_json() if item else None}

        found = (await self._effect("store.get", call))["item"]
        return Item.from_json(found) if found is not None else None

    async def put(
        self,
        namespace: Sequence[str],
        key: str,
        value: dict[str, Any],
        *,
        ttl: float | None = None,
    ) -> None:
        """Store `value` under `namespace`/`key`; `ttl` in minutes, as LangGraph's."""

        async def call() -> JsonObject:
            await asyncio.to_thread(
                self._store.put, self._tenant_id, namespace, key, value, ttl_minutes=ttl
            )
            return {}

        await self._effect("store.put", call)

    async def delete(self, namespace: Sequence[str], key: str) -> None:
        async def call() -> JsonObject:
            await asyncio.to_thread(self._store.delete, self._tenant_id, namespace, key)
            return {}

        await self._effect("store.delete", call)

    async def search(
        self,
        namespace_prefix: Sequence[str],
        *,
        filter: dict[str, Any] | None = None,
        query: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Item]:
        async def call() -> JsonObject:
            items = await asyncio.to_thread(
                self._store.search,
                self._tenant_id,
                namespace_prefix,
                filter=filter,
                query=query,
                limit=limit,
                offset=offset,
            )
            return {"items": [item.to_json(with_score=True) for item in items]}

        found = (await self._effect("store.search", call))["items"]
        return [Item.from_json(item) for item in found]
