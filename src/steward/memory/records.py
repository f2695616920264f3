"""Durable records: namespaced JSON documents per tenant, in the long-term store that
LangGraph's `/store` API serves (`store.items.ItemStore`), so both see the same items."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from steward.memory.semantic import record_subject
from steward.store.items import SEPARATOR, Item, ItemStore, validate_namespace


class RecordMemory:
    def __init__(self, items: ItemStore, tenant_id: str, end_user: str | None = None) -> None:
        self._items = items
        self._tenant_id = tenant_id
        self._end_user = end_user

    async def put(
        self,
        namespace: Sequence[str],
        key: str,
        value: dict[str, Any],
        *,
        ttl_minutes: float | None = None,
    ) -> None:
        """Store `value`; written for the bound end user, it is erased with them."""
        labels = validate_namespace(namespace)
        if not isinstance(value, dict):
            raise ValueError("a record's value is a JSON object")

        def run() -> None:
            if self._end_user is not None:
                record_subject(
                    self._items.db, self._tenant_id, self._end_user, SEPARATOR.join(labels), key
                )
            self._items.put(self._tenant_id, labels, key, value, ttl_minutes=ttl_minutes)

        await asyncio.to_thread(run)

    async def get(self, namespace: Sequence[str], key: str) -> Item | None:
        return await asyncio.to_thread(self._items.get, self._tenant_id, namespace, key)

    async def delete(self, namespace: Sequence[str], key: str) -> bool:
        return await asyncio.to_thread(self._items.delete, self._tenant_id, namespace, key)

    async def search(
        self,
        prefix: Sequence[str],
        *,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Item]:
        return await asyncio.to_thread(
            lambda: self._items.search(
                self._tenant_id, prefix, filter=filter, limit=limit, offset=offset
            )
        )
