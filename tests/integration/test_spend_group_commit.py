"""Group commit of reservations in the database counters (SQLite and PostgreSQL): concurrent
reservations share one transaction, and each is still decided exactly against the cap."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from steward.models.budget import Limit
from steward.models.budget.database import DatabaseSpendCounters
from steward.store import migrate
from steward.store.database import Database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'steward.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


def _limit(counter: str, nano: int) -> Limit:
    return Limit(counter, "key_daily", nano, time.time() + 3600, None)


async def test_fifty_concurrent_reservations_are_written_in_one_transaction_within_the_cap(
    database: Database,
) -> None:
    counters = DatabaseSpendCounters(database)
    commits = 0

    def committed(*_: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(database.engine, "commit", committed)
    tenant, key = _limit(f"tenant:{uuid.uuid4().hex}", 10), _limit(f"key:{uuid.uuid4().hex}", 7)

    decisions = await asyncio.gather(*(counters.reserve([tenant, key], 1) for _ in range(50)))

    assert commits == 1
    assert decisions.count(None) == 7  # the tighter counter allows seven
    assert all(refused == key for refused in decisions if refused is not None)
    assert await counters.spent(key.counter) == 7
    assert await counters.spent(tenant.counter) == 7  # refusals added nothing anywhere


async def test_a_refused_reservation_leaves_room_for_a_smaller_one_in_the_same_batch(
    database: Database,
) -> None:
    counters = DatabaseSpendCounters(database)
    cap = _limit(f"user:{uuid.uuid4().hex}", 10)

    big, small = await asyncio.gather(counters.reserve([cap], 11), counters.reserve([cap], 10))

    assert big == cap and small is None
    assert await counters.spent(cap.counter) == 10


async def test_a_counter_reused_after_its_window_expired_starts_over(database: Database) -> None:
    counters = DatabaseSpendCounters(database)
    counter = f"key:{uuid.uuid4().hex}"
    past = Limit(counter, "key_daily", 1000, time.time() - 1, None)
    assert await counters.reserve([past], 900) is None

    current = _limit(counter, 1000)
    assert await counters.reserve([current], 900) is None  # the old window's 900 is gone

    assert await counters.spent(counter) == 900
    assert await counters.reserve([current], 200) == current
