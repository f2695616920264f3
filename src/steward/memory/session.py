"""Session memory: small JSON values with a time-to-live and atomic counters, per tenant and end
user, on the hot-state store (process memory embedded, Redis in scale-out mode)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from steward.store.hot import HotState

DEFAULT_TTL_S = 3600.0


def user_prefix(tenant_id: str, end_user: str | None) -> str:
    """Every session key of one tenant's end user starts with this (erasure drops the prefix)."""
    return f"mem/{quote(tenant_id, safe='')}/{quote(end_user or '', safe='')}/"


class SessionMemory:
    def __init__(self, hot: HotState, tenant_id: str, end_user: str | None = None) -> None:
        self._hot = hot
        self._prefix = user_prefix(tenant_id, end_user)

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError("a session key is a non-empty string")
        return self._prefix + key

    async def set(self, key: str, value: Any, ttl_s: float = DEFAULT_TTL_S) -> None:
        """Store any JSON value for `ttl_s` seconds."""
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        await self._hot.put_session(self._key(key), {"value": value}, ttl_s)

    async def get(self, key: str, default: Any = None) -> Any:
        found = await self._hot.get_session(self._key(key))
        return default if found is None else found.get("value")

    async def delete(self, key: str) -> None:
        await self._hot.drop_session(self._key(key))

    async def incr(self, key: str, amount: int = 1, ttl_s: float = DEFAULT_TTL_S) -> int:
        """Add to a counter atomically (across processes with Redis); returns the new value.
        The counter expires `ttl_s` after its first increment."""
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        return await self._hot.add_to_counter(self._key(key), int(amount), ttl_s)

    async def counter(self, key: str) -> int:
        return await self._hot.get_counter(self._key(key)) or 0
