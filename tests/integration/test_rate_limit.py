"""The token bucket, one suite over memory and Redis: bursts up to capacity, then refusals that
say when a token returns; buckets are independent; limits may differ per call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from steward.policy.rate_limit import Limit, MemoryRateLimiter, RateLimiter, RateLimits
from steward.policy.rate_limit_redis import RedisRateLimiter
from tests.redis_server import SHARED_REDIS_URL, drop_prefix, unique_prefix


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    prefix = unique_prefix()
    chosen: RateLimiter
    if request.param == "memory":
        chosen = MemoryRateLimiter()
    else:
        chosen = RedisRateLimiter(SHARED_REDIS_URL, prefix=prefix)
    yield chosen
    await chosen.aclose()
    if request.param == "redis":
        await drop_prefix(SHARED_REDIS_URL, prefix)


async def test_bucket_allows_a_burst_then_refuses_with_retry_after(limiter: RateLimiter) -> None:
    limit = Limit(per_minute=60, burst=3)
    assert [(await limiter.take("k", limit)).allowed for _ in range(3)] == [True, True, True]
    refused = await limiter.take("k", limit)
    assert not refused.allowed
    assert not refused.unavailable
    assert 0 < refused.retry_after_s <= 1.0


async def test_buckets_are_independent(limiter: RateLimiter) -> None:
    limit = Limit(per_minute=60, burst=1)
    assert (await limiter.take("a", limit)).allowed
    assert (await limiter.take("b", limit)).allowed
    assert not (await limiter.take("a", limit)).allowed


async def test_tokens_refill_at_the_configured_rate(limiter: RateLimiter) -> None:
    limit = Limit(per_minute=600, burst=1)  # one token per 100 ms
    assert (await limiter.take("r", limit)).allowed
    refused = await limiter.take("r", limit)
    assert not refused.allowed
    await asyncio.sleep(refused.retry_after_s + 0.05)
    assert (await limiter.take("r", limit)).allowed


async def test_concurrent_takes_never_exceed_the_burst(limiter: RateLimiter) -> None:
    limit = Limit(per_minute=1, burst=5)
    decisions = await asyncio.gather(*(limiter.take("c", limit) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 5


def test_a_keys_own_limit_overrides_the_default() -> None:
    limits = RateLimits(per_key=Limit.of(1200), per_user=Limit.of(60))
    assert limits.for_key(None, None) == Limit(1200, 1200)
    assert limits.for_key(30, None) == Limit(30, 30)
    assert limits.for_key(30, 5) == Limit(30, 5)
    assert limits.for_key(None, 7) == Limit(1200, 7)


async def test_unreachable_redis_fails_open_or_closed_by_configuration() -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    open_limiter = RedisRateLimiter(dead, fail_open=True)
    closed_limiter = RedisRateLimiter(dead, fail_open=False)
    try:
        assert (await open_limiter.take("k", Limit.of(60))).allowed
        refused = await closed_limiter.take("k", Limit.of(60))
        assert not refused.allowed
        assert refused.unavailable
    finally:
        await open_limiter.aclose()
        await closed_limiter.aclose()
