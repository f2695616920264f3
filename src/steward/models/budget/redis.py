"""Spend counters in Redis for scale-out: one Lua script checks every cap and adds to every
counter in one atomic step, so replicas reserving at once can never pass a cap together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from steward.models.budget.types import Limit

# KEYS: counters. ARGV: amount, then each counter's limit, then each counter's expiry (epoch s).
_RESERVE = """
local amount = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + amount > tonumber(ARGV[1 + i]) then
    return i
  end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], amount)
  redis.call('EXPIREAT', KEYS[i], ARGV[1 + n + i])
end
return 0
"""
_ADJUST = """
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIREAT', KEYS[i], ARGV[1 + i])
end
return 0
"""


class RedisSpendCounters:
    """Counters as plain integer keys under `{prefix}spend:`, `prefix` being the deployment's
    `redis_prefix`, so deployments sharing a Redis never share a cap. All keys of one
    reservation must live on one node (a Redis Cluster would need a hash tag per scope)."""

    def __init__(self, url: str, *, prefix: str = "steward:", max_connections: int = 64) -> None:
        # A blocking pool: a burst of calls waits for a connection instead of failing.
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections)
        self._redis: Redis = Redis(connection_pool=pool)
        self._prefix = prefix + "spend:"
        self._reserve: Any = self._redis.register_script(_RESERVE)
        self._adjust: Any = self._redis.register_script(_ADJUST)

    async def reserve(self, limits: Sequence[Limit], amount_nano: int) -> Limit | None:
        keys = [self._prefix + limit.counter for limit in limits]
        args = [amount_nano, *(lim.limit_nano for lim in limits), *_expiries(limits)]
        refused = int(await self._reserve(keys=keys, args=args))
        return limits[refused - 1] if refused else None

    async def adjust(self, limits: Sequence[Limit], delta_nano: int) -> None:
        keys = [self._prefix + limit.counter for limit in limits]
        await self._adjust(keys=keys, args=[delta_nano, *_expiries(limits)])

    async def spent(self, counter: str) -> int:
        value = await self._redis.get(self._prefix + counter)
        return int(value) if value is not None else 0

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()


def _expiries(limits: Sequence[Limit]) -> list[int]:
    return [int(limit.expires_at) + 1 for limit in limits]
