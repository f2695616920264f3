"""Retention on SQLite and PostgreSQL: per-tenant days and counts for spans, captured content
and run payloads, enforced in small batches; run records and other tenants stay untouched."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from steward.observe.retention import RetentionJob, RetentionPolicies, RetentionPolicy
from steward.store.database import Database
from steward.store.migrate import upgrade
from steward.store.schema import Run, Span, Tenant

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CONTENT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": []}]),
    "gen_ai.output.messages": "[]",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'steward.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    upgrade(url)
    database = Database(url)
    with database.session() as session:
        session.add_all([Tenant(id="acme", name="acme"), Tenant(id="other", name="other")])
    yield database
    database.dispose()


def add_spans(db: Database, tenant: str, ages_days: list[float], *, content: bool) -> list[str]:
    ids = []
    with db.session() as session:
        for index, age in enumerate(ages_days):
            start = int((NOW - timedelta(days=age)).timestamp() * 1e9) + index
            span_id = uuid.uuid4().hex[:16]
            ids.append(span_id)
            session.add(
                Span(
                    span_id=span_id,
                    trace_id=uuid.uuid4().hex,
                    tenant_id=tenant,
                    run_id=None,
                    name="chat m",
                    kind="CLIENT",
                    start_ns=start,
                    end_ns=start + 1000,
                    status_code="OK",
                    attributes=dict(CONTENT) if content else {"gen_ai.operation.name": "chat"},
                    events={"events": []},
                )
            )
    return ids


def add_runs(db: Database, tenant: str, ages_days: list[float]) -> list[str]:
    ids = []
    with db.session() as session:
        for age in ages_days:
            run_id = str(uuid.uuid4())
            ids.append(run_id)
            ended = NOW - timedelta(days=age)
            session.add(
                Run(
                    id=run_id,
                    tenant_id=tenant,
                    agent="support",
                    status="success",
                    input={"message": "Where is my order 42?"},
                    output={"answer": "shipped"},
                    cost_usd=0.25,
                    created_at=ended,
                    ended_at=ended,
                )
            )
        session.add(  # a run still going: its input is what recovery needs, never cleared
            Run(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                agent="support",
                status="pending",
                input={"message": "old but open"},
                created_at=NOW - timedelta(days=400),
            )
        )
    return ids


def span_ids(db: Database, tenant: str) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Span.span_id).where(Span.tenant_id == tenant)))


def attributes(db: Database, span_id: str) -> dict[str, Any]:
    with db.session() as session:
        row = session.get(Span, span_id)
        assert row is not None
        return dict(row.attributes)


def run_row(db: Database, run_id: str) -> Run:
    with db.session() as session:
        row = session.get(Run, run_id)
        assert row is not None
        session.expunge(row)
        return row


def test_span_days_and_count_delete_the_oldest_in_small_batches(db: Database) -> None:
    ages = [0.5, 1, 2, 3, 10, 20, 30, 40, 50, 60, 70, 80]
    acme = add_spans(db, "acme", ages, content=False)
    other = add_spans(db, "other", ages, content=False)
    RetentionPolicies(db).set("acme", RetentionPolicy(spans_days=15))
    job = RetentionJob(db, batch=3, now=lambda: NOW)

    report = job.enforce()

    assert report.spans_deleted == 7  # 20..80 days old, in three batches of three or fewer
    assert span_ids(db, "acme") == set(acme[:5])
    assert span_ids(db, "other") == set(other)  # no policy, no deletion

    RetentionPolicies(db).set("acme", RetentionPolicy(spans_days=15, spans_max=2))
    assert job.enforce().spans_deleted == 3
    assert span_ids(db, "acme") == set(acme[:2])  # the two newest
    assert job.enforce().spans_deleted == 0  # idempotent


def test_the_default_policy_applies_to_tenants_without_their_own(db: Database) -> None:
    acme = add_spans(db, "acme", [1, 5, 9], content=False)
    other = add_spans(db, "other", [1, 5, 9], content=False)
    policies = RetentionPolicies(db)
    policies.set("*", RetentionPolicy(spans_days=3))
    policies.set("acme", RetentionPolicy(spans_days=7))

    RetentionJob(db, batch=2, now=lambda: NOW).enforce()

    assert span_ids(db, "acme") == set(acme[:2])
    assert span_ids(db, "other") == {other[0]}


def test_captured_content_is_stripped_and_the_span_kept(db: Database) -> None:
    ids = add_spans(db, "acme", [1, 2, 3, 8, 9, 10, 11], content=True)
    RetentionPolicies(db).set("acme", RetentionPolicy(content_days=7, content_max=2))

    report = RetentionJob(db, batch=2, now=lambda: NOW).enforce()

    assert report.content_stripped == 5  # four past 7 days, then one beyond the newest two
    assert report.spans_deleted == 0
    assert span_ids(db, "acme") == set(ids)
    for span_id in ids[:2]:
        assert attributes(db, span_id) == CONTENT
    for span_id in ids[2:]:
        assert attributes(db, span_id) == {"gen_ai.operation.name": "chat"}


def test_run_payloads_are_emptied_but_the_records_stay(db: Database) -> None:
    runs = add_runs(db, "acme", [1, 2, 5, 40, 50, 60])
    others = add_runs(db, "other", [60])
    RetentionPolicies(db).set("acme", RetentionPolicy(payloads_days=30, payloads_max=2))
    job = RetentionJob(db, batch=2, now=lambda: NOW)

    report = job.enforce()

    assert report.payloads_cleared == 4  # three past 30 days, one beyond the newest two
    for run_id in runs[:2]:
        row = run_row(db, run_id)
        assert row.input == {"message": "Where is my order 42?"}
        assert row.output == {"answer": "shipped"}
    for run_id in runs[2:]:
        row = run_row(db, run_id)
        assert (row.input, row.output) == ({}, None)
        assert (row.status, row.cost_usd) == ("success", 0.25)  # the record itself stays
    assert run_row(db, others[0]).output == {"answer": "shipped"}
    with db.session() as session:
        pending = session.scalar(
            select(Run.input).where(Run.tenant_id == "acme", Run.status == "pending")
        )
        assert pending == {"message": "old but open"}
        assert session.scalar(select(func.count()).select_from(Run)) == 9
    assert job.enforce().payloads_cleared == 0


def test_the_scheduled_job_enforces_on_its_own(db: Database) -> None:
    add_spans(db, "acme", [1, 100], content=False)
    RetentionPolicies(db).set("acme", RetentionPolicy(spans_days=30))
    job = RetentionJob(db, interval_s=0.05, now=lambda: NOW)

    async def until_enforced() -> None:
        task = asyncio.create_task(job.run_forever())
        try:
            for _ in range(1500):  # bounded: the assertion below says what was missed
                if len(span_ids(db, "acme")) == 1:
                    break
                await asyncio.sleep(0.02)
        finally:
            task.cancel()

    asyncio.run(asyncio.wait_for(until_enforced(), 30))
    assert len(span_ids(db, "acme")) == 1


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="spans_days"):
        RetentionPolicy(spans_days=-1)


def test_the_cli_sets_shows_and_enforces(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    steward = str(Path(sys.executable).with_name("steward"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env["STEWARD_HOME"] = str(tmp_path)

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [steward, "retention", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert cli("set", "--tenant", "*", "--spans-days", "30")["spans_days"] == 30
    db = Database(f"sqlite:///{tmp_path / 'steward.db'}")
    try:
        old = add_spans(db, "default", [1000], content=False)
        new = add_spans(db, "default", [0], content=False)
        new_ids = {new[0]}
        assert cli("show")["default"]["spans_days"] == 30
        assert cli("enforce")["spans_deleted"] == 1
        assert span_ids(db, "default") == new_ids and old[0] not in new_ids
    finally:
        db.dispose()
    bad = subprocess.run(
        [steward, "retention", "set", "--tenant", "x", "--spans-days", "-3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "spans-days" in bad.stderr
