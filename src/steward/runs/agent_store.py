"""`ctx.store`: the tenant's long-term store inside an agent (LangGraph's `BaseStore` calls).

The same items as `/store/items`, scoped to the run's tenant. Store calls are not journaled
steps: like LangGraph's store inside a node, a replayed step reads the store as it is now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from steward.store.items import Item, ItemStore

_installed: list[ItemStore] = []


def install(store: ItemStore) -> None:
    """Make `store` the one agents of this process reach (the runtime calls this at build)."""
    _installed[:] = [store]


def installed() -> ItemStore:
    if not _installed:
        raise RuntimeError("no store in this process: ctx.store needs a Steward runtime")
    return _installed[0]


class AgentStore:
    def __init__(self, store: ItemStore, tenant_id: str) -> None:
        self._store = store
        self._tenant_id = tenant_id

    async def get(
        self, namespace: Sequence[str], key: str, *, refresh_ttl: bool = True
    ) -> Item | None:
        return await asyncio.to_thread(
            self._store.get, self._tenant_id, namespace, key, refresh_ttl=refresh_ttl
        )

    async def put(
        self,
        namespace: Sequence[str],
        key: str,
        value: dict[str, Any],
        *,
        ttl: float | None = None,
    ) -> None:
        """Store `value` under `namespace`/`key`; `ttl` in minutes, as LangGraph's."""
        await asyncio.to_thread(
            self._store.put, self._tenant_id, namespace, key, value, ttl_minutes=ttl
        )

    async def delete(self, namespace: Sequence[str], key: str) -> None:
        await asyncio.to_thread(self._store.delete, self._tenant_id, namespace, key)

    async def search(
        self,
        namespace_prefix: Sequence[str],
        *,
        filter: dict[str, Any] | None = None,
        query: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Item]:
        return await asyncio.to_thread(
            self._store.search,
            self._tenant_id,
            namespace_prefix,
            filter=filter,
            query=query,
            limit=limit,
            offset=offset,
        )
