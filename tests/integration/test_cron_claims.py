"""The cron row claim on a real database: among concurrent claimers exactly one wins each tick,
and a claim whose holder died is finished by another scheduler exactly once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from steward.runs.crons import CronScheduler
from steward.store import migrate
from steward.store.crons import Cron, CronStore, next_tick, tick_label
from steward.store.database import Database
from steward.store.platform_tables import CronRow
from steward.store.schema import Run, utcnow

TENANT = "default"
CLAIMERS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
    else:
        url = f"sqlite:///{tmp_path / 'steward.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def _cron(store: CronStore, schedule: str = "0 0 1 1 *") -> Cron:
    """A yearly cron: the only due ticks are the ones a test sets."""
    return store.create(
        TENANT,
        assistant_id="support",
        thread_id=None,
        schedule=schedule,
        timezone=None,
        end_time=None,
        enabled=True,
        payload={"input": {"message": "hi"}},
        metadata={},
        user_id=None,
        on_run_completed=None,
    )


def _make_due(db: Database, cron_id: str, tick: datetime) -> None:
    with db.session() as session:
        session.execute(update(CronRow).where(CronRow.id == cron_id).values(next_run_at=tick))


def _race(claim: object, count: int = CLAIMERS) -> list[bool]:
    barrier = threading.Barrier(count)
    results: list[bool] = []
    lock = threading.Lock()

    def contender() -> None:
        barrier.wait()
        won = claim()  # type: ignore[operator]
        with lock:
            results.append(won)

    threads = [threading.Thread(target=contender) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_claimers_win_each_tick_exactly_once(db: Database) -> None:
    store = CronStore(db)
    cron = _cron(store)
    now = utcnow()
    for minutes_ago in (5, 4, 3):
        tick = (now - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
        _make_due(db, cron.id, tick)
        (due,) = [c for c in store.due(now) if c.id == cron.id]
        results = _race(lambda due=due: store.claim(due, now, 60))
        assert results.count(True) == 1, results
        after = store.get(TENANT, cron.id)
        assert after is not None
        assert after.claimed_tick is not None
        # The next tick is reckoned from now: ticks missed while down are not replayed.
        assert after.next_run_at == next_tick(cron.schedule, None, now, None)
        assert store.due(now) == []  # claimed, and the claim still holds
        store.release(after, after.claimed_tick, "run-1")


def test_a_dead_claimers_tick_is_fired_once_by_another_scheduler(db: Database) -> None:
    store = CronStore(db)
    cron = _cron(store)
    fired: list[tuple[str, datetime]] = []

    async def crash(c: Cron, tick: datetime) -> str:
        raise RuntimeError("the process died before starting the run")

    async def fire(c: Cron, tick: datetime) -> str:
        fired.append((c.id, tick))
        return f"run-{len(fired)}"

    now = utcnow()
    tick = (now - timedelta(minutes=1)).replace(second=0, microsecond=0)
    _make_due(db, cron.id, tick)
    dying = CronScheduler(store, crash, interval_s=1, lease_s=30)
    with pytest.raises(RuntimeError):
        asyncio.run(dying.tick(now))
    assert fired == []
    # While the claim holds, nobody else touches the tick.
    rescuer = CronScheduler(store, fire, interval_s=1, lease_s=30)
    assert asyncio.run(rescuer.tick(now + timedelta(seconds=10))) == []
    later = now + timedelta(seconds=31)
    due = [c for c in store.due(later) if c.id == cron.id]
    assert [c.claimed_tick for c in due] == [tick]
    takers = _race(lambda: store.take_over(due[0], later, 30), 4)
    assert takers.count(True) == 1
    # The winner of that race is this test; a scheduler after its lease finishes the work once.
    even_later = later + timedelta(seconds=31)
    assert asyncio.run(rescuer.tick(even_later)) == ["run-1"]
    assert [t for _, t in fired] == [tick]
    assert asyncio.run(rescuer.tick(even_later)) == []
    after = store.get(TENANT, cron.id)
    assert after is not None and after.claimed_tick is None


def test_a_taken_over_tick_whose_run_exists_is_not_fired_again(db: Database) -> None:
    store = CronStore(db)
    cron = _cron(store)
    now = utcnow()
    tick = (now - timedelta(minutes=1)).replace(second=0, microsecond=0)
    _make_due(db, cron.id, tick)
    (due,) = [c for c in store.due(now) if c.id == cron.id]
    assert store.claim(due, now, 30)
    # The claimer started the run, then died before releasing its claim.
    with db.session() as session:
        session.add(
            Run(
                id="run-started",
                tenant_id=TENANT,
                thread_id="t1",
                agent="support",
                active=False,
                status="success",
                meta={"cron_id": cron.id, "cron_tick": tick_label(tick)},
            )
        )
    fired: list[datetime] = []

    async def fire(c: Cron, t: datetime) -> str:
        fired.append(t)
        return "duplicate"

    assert (
        asyncio.run(CronScheduler(store, fire, interval_s=1).tick(now + timedelta(seconds=31)))
        == []
    )
    assert fired == []
    after = store.get(TENANT, cron.id)
    assert after is not None and after.claimed_tick is None
