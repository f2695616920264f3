"""The token bucket in Redis: one atomic Lua script per request, shared by every API server.

The script reads Redis's own clock, so servers with skewed clocks still agree. When Redis cannot
be reached the limiter fails open (allow) or closed (refuse) as configured.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from steward.policy.rate_limit import Decision, Limit

log = logging.getLogger("steward.rate_limit")

# KEYS[1] bucket; ARGV rate (tokens per ms), burst, cost. Returns {allowed, retry_after_ms}.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry_ms = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return {allowed, retry_ms}
"""


class RedisRateLimiter:
    def __init__(self, url: str, *, prefix: str = "steward:", fail_open: bool = True) -> None:
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self._script: Any = self._redis.register_script(_TAKE)
        self._prefix = prefix + "rl:"
        self.fail_open = fail_open
        self._down = False

    async def take(self, bucket: str, limit: Limit, cost: float = 1.0) -> Decision:
        try:
            allowed, retry_ms = await self._script(
                keys=[self._prefix + bucket],
                args=[limit.per_second / 1000.0, limit.burst, cost],
            )
        except (RedisError, OSError) as exc:
            if not self._down:
                self._down = True
                mode = "open (allowing)" if self.fail_open else "closed (refusing)"
                log.warning("rate limiter cannot reach redis (%s); failing %s", exc, mode)
            if self.fail_open:
                return Decision(True)
            return Decision(False, retry_after_s=1.0, unavailable=True)
        if self._down:
            self._down = False
            log.warning("rate limiter reaches redis again")
        if allowed:
            return Decision(True)
        return Decision(False, retry_after_s=int(retry_ms) / 1000.0)

    async def aclose(self) -> None:
        await self._redis.aclose()
