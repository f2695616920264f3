"""The dashboard's queries on both stores: run filters (duration arithmetic, text in the input,
cost ranges, sort), spend per day and health counts agree on SQLite and PostgreSQL, and never
cross tenants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from steward.server.ui.cost_query import daily_totals, spend_by_day
from steward.server.ui.run_query import RunFilters, list_runs
from steward.store import migrate
from steward.store.database import Database
from steward.store.schema import Run, SandboxRecord, SpendRecord, Tenant

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
    else:
        url = f"sqlite:///{tmp_path / 'steward.db'}"
    migrate.upgrade(url)
    database = Database(url)
    with database.session() as session:
        session.add_all([Tenant(id="t1", name="t1"), Tenant(id="t2", name="t2")])
    with database.session() as session:
        session.add_all(
            [
                _run("fast", "t1", "alpha", seconds=0.5, cost=0.01, text="refund order 42"),
                _run("slow", "t1", "alpha", seconds=90, cost=0.30, text="where is 7"),
                _run("mid", "t1", "beta", seconds=5, cost=0.05, text="100% sure_thing"),
                _run("open", "t1", "beta", seconds=None, cost=0.0, text="still going"),
                _run("theirs", "t2", "alpha", seconds=90, cost=0.30, text="refund order 42"),
            ]
        )
        session.add_all(
            [
                _spend("s1", "t1", "alpha", 0.10, NOW),
                _spend("s2", "t1", "alpha", 0.20, NOW - timedelta(days=1)),
                _spend("s3", "t1", "beta", 0.05, NOW),
                _spend("s4", "t2", "alpha", 9.00, NOW),
            ]
        )
        session.add(
            SandboxRecord(id="sb1", tenant_id="t1", backend="bwrap", state="running", owner="x")
        )
    yield database
    database.dispose()


def _run(
    run_id: str, tenant: str, agent: str, *, seconds: float | None, cost: float, text: str
) -> Run:
    started = NOW - timedelta(minutes=10)
    return Run(
        id=run_id,
        tenant_id=tenant,
        agent=agent,
        status="success" if seconds is not None else "running",
        stop_reason="completed" if seconds is not None else None,
        active=False,
        input={"message": text},
        cost_usd=cost,
        created_at=started,
        started_at=started,
        ended_at=started + timedelta(seconds=seconds) if seconds is not None else None,
    )


def _spend(record_id: str, tenant: str, agent: str, usd: float, when: datetime) -> SpendRecord:
    return SpendRecord(
        id=record_id,
        tenant_id=tenant,
        agent=agent,
        source="agent",
        provider="openai",
        deployment="openai",
        model="gpt-4.1-mini",
        input_tokens=100,
        output_tokens=10,
        cost_usd=usd,
        created_at=when,
    )


def ids(db: Database, **filters: str) -> list[str]:
    runs, _ = list_runs(db, "t1", RunFilters.parse(filters))
    return [run.id for run in runs]


def test_duration_ranges_use_the_stores_own_date_arithmetic(db: Database) -> None:
    assert ids(db, min_duration="1", sort="duration", order="asc") == ["mid", "slow"]
    assert ids(db, max_duration="10", sort="duration", order="desc") == ["mid", "fast"]
    assert ids(db, min_duration="60", max_duration="120") == ["slow"]


def test_text_cost_agent_and_status_filters_stay_in_the_tenant(db: Database) -> None:
    assert ids(db, q="refund") == ["fast"]  # t2's identical run never shows
    assert ids(db, q="100%") == ["mid"]  # % and _ are literal characters, not wildcards
    assert ids(db, q="sure_thing") == ["mid"]
    assert ids(db, q="1_0") == []
    assert ids(db, min_cost="0.02", max_cost="0.1") == ["mid"]
    assert sorted(ids(db, agent="beta")) == ["mid", "open"]
    assert ids(db, status="running") == ["open"]
    assert ids(db, sort="cost", order="desc")[:2] == ["slow", "mid"]


def test_spend_per_day_groups_within_the_tenant(db: Database) -> None:
    rows = spend_by_day(db, "t1", "agent", 7)
    by_group: dict[str, float] = {}
    for row in rows:
        by_group[row.group] = by_group.get(row.group, 0.0) + row.cost_usd
    assert by_group == pytest.approx({"alpha": 0.30, "beta": 0.05})
    daily = dict(daily_totals(rows, 7))
    assert daily[NOW.date().isoformat()] == pytest.approx(0.15)
    assert daily[(NOW - timedelta(days=1)).date().isoformat()] == pytest.approx(0.20)
    assert len(daily) == 7
