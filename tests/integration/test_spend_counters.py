"""Spend counters: one suite over every backend (memory, SQLite, PostgreSQL, Redis), so the
embedded and scale-out caps behave the same, under 200 concurrent reservations too."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from steward.config import Settings
from steward.errors import SpendCapExceeded
from steward.models.budget import NANO_USD, Budget, Limit, SpendCaps, SpendCounters, SpendScope
from steward.models.budget.database import DatabaseSpendCounters
from steward.models.budget.deferred import DeferredReleases
from steward.models.budget.memory import MemorySpendCounters
from steward.models.budget.redis import RedisSpendCounters
from steward.models.gateway_factory import build_gateway
from steward.observe.tracing import Tracing
from steward.store import migrate
from steward.store.database import Database

POSTGRES_ADMIN_URL = os.environ.get(
    "STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("STEWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"steward_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis", "sqlite-deferred"])
async def counters(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SpendCounters]:
    backend: SpendCounters
    db: Database | None = None
    if request.param == "memory":
        backend = MemorySpendCounters()
    elif request.param == "redis":
        backend = RedisSpendCounters(REDIS_URL, prefix=f"steward:test:{uuid.uuid4().hex}:")
    else:
        url = (
            f"sqlite:///{tmp_path / 'steward.db'}"
            if request.param.startswith("sqlite")
            else request.getfixturevalue("postgres_url")
        )
        migrate.upgrade(url)
        db = Database(url)
        backend = DatabaseSpendCounters(db)
        if request.param.endswith("-deferred"):  # what the gateway uses: releases batched
            backend = DeferredReleases(backend)
    try:
        yield backend
    finally:
        await backend.aclose()
        if db is not None:
            db.dispose()


def _limit(counter: str, usd: float) -> Limit:
    return Limit(counter, "user_daily", round(usd * NANO_USD), time.time() + 3600, None)


async def test_a_reservation_is_taken_from_every_counter_or_from_none(
    counters: SpendCounters,
) -> None:
    roomy, tight = _limit("a", 1.0), _limit("b", 0.25)

    assert await counters.reserve([roomy, tight], NANO_USD // 5) is None
    refused = await counters.reserve([roomy, tight], NANO_USD // 10)

    assert refused == tight
    assert await counters.spent("a") == NANO_USD // 5  # the refusal added nothing anywhere
    assert await counters.spent("b") == NANO_USD // 5


async def test_settling_replaces_the_reservation_with_the_real_cost(
    counters: SpendCounters,
) -> None:
    limit = _limit("c", 1.0)
    await counters.reserve([limit], 600)
    await counters.adjust([limit], 250 - 600)

    assert await counters.spent("c") == 250
    assert await counters.spent("never-touched") == 0


async def test_200_concurrent_reservations_never_pass_the_cap(counters: SpendCounters) -> None:
    budget = Budget(counters, SpendCaps(user_daily_usd=0.05))
    scope = SpendScope(tenant_id="t", user_id=f"u-{uuid.uuid4().hex[:6]}")
    granted = 0
    refusals: list[tuple[str, str | None]] = []

    async def call(i: int) -> None:
        nonlocal granted
        try:
            reservation = await budget.reserve(scope, 0.001)  # 200 x 0.001 = 4x the cap
        except SpendCapExceeded as exc:
            refusals.append((exc.cap, exc.resets_at))
            return
        granted += 1
        await asyncio.sleep(0)
        await budget.settle(reservation, 0.0008 + (i % 3) * 0.0001)

    await asyncio.gather(*(call(i) for i in range(200)))

    (limit,) = budget.limits(scope)
    spent = await counters.spent(limit.counter)
    assert spent <= limit.limit_nano
    assert 50 <= granted < 200  # the cap bound, and no reservation was lost or doubled
    assert len(refusals) == 200 - granted
    assert all(cap == "user_daily" and resets for cap, resets in refusals)
    remaining = await budget.remaining(scope)
    assert remaining["user_daily"] == pytest.approx((limit.limit_nano - spent) / NANO_USD)


async def test_two_deployments_with_their_own_redis_prefix_never_share_a_cap(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'steward.db'}"
    migrate.upgrade(url)
    db = Database(url)
    run = uuid.uuid4().hex
    prefixes = (f"steward-test-{run}-a:", f"steward-test-{run}-b:")
    gateways = [
        build_gateway(
            Settings(
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                gateway={"spend_counters": "redis", "caps": {"user_daily_usd": 0.01}},
            ),
            db,
            Tracing.disabled(),
        )
        for prefix in prefixes
    ]
    scope = SpendScope(tenant_id="default", user_id=f"user-{run}")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await gateways[0].budget.reserve(scope, 0.01)  # the user's whole day on deployment a
        with pytest.raises(SpendCapExceeded):
            await gateways[0].budget.reserve(scope, 0.001)

        await gateways[1].budget.reserve(scope, 0.01)  # deployment b never served this user

        keys = sorted(k.decode() for k in client.scan_iter(match=f"*{run}*"))
        assert len(keys) == 2
        assert [k.split(":", 1)[0] + ":" for k in keys] == list(prefixes)
    finally:
        for gateway in gateways:
            await gateway.aclose()
        for key in client.scan_iter(match=f"*{run}*"):
            client.delete(key)
        client.close()
        db.dispose()
