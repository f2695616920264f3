"""Idempotency keys and webhook deliveries on each durable store (SQLite and PostgreSQL): the
database decides between concurrent claims, stored responses round-trip, leases lapse."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from steward.store import migrate
from steward.store.database import Database
from steward.store.idempotency import IdempotencyStore, StoredResponse
from steward.store.schema import Run, Tenant, utcnow
from steward.webhooks.store import WebhookStore


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'records.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    migrate.upgrade(url)
    database = Database(url)
    with database.session() as session:
        session.add(Tenant(id="t1", name="t1"))
    yield database
    database.dispose()


def test_exactly_one_of_many_concurrent_claims_wins(db: Database) -> None:
    store = IdempotencyStore(db, ttl_s=60, lease_s=60)
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: store.claim("t1", "k1", "key", "fp"), range(16)))
    outcomes = sorted(claim.outcome for claim in claims)
    assert outcomes == ["claimed"] + ["in_progress"] * 15


def test_a_stored_response_is_replayed_and_other_payloads_refused(db: Database) -> None:
    store = IdempotencyStore(db, ttl_s=60, lease_s=60)
    assert store.claim("t1", "k1", "key", "fp").outcome == "claimed"
    body = bytes(range(256))  # any bytes survive the round trip
    store.complete("t1", "k1", "key", StoredResponse(201, {"content-type": "x/y"}, body))
    replay = store.claim("t1", "k1", "key", "fp")
    assert replay.outcome == "replay"
    assert replay.response == StoredResponse(201, {"content-type": "x/y"}, body)
    assert store.claim("t1", "k1", "key", "other").outcome == "mismatch"
    assert store.claim("t1", "k2", "key", "other").outcome == "claimed"  # another principal


def test_expired_keys_and_lapsed_leases_free_the_key(db: Database) -> None:
    short = IdempotencyStore(db, ttl_s=0.3, lease_s=0.3)
    assert short.claim("t1", "k1", "expiring", "fp").outcome == "claimed"
    short.complete("t1", "k1", "expiring", StoredResponse(200, {}, b"{}"))
    assert short.claim("t1", "k1", "crashed", "fp").outcome == "claimed"  # never completed
    time.sleep(0.4)
    assert short.claim("t1", "k1", "expiring", "new").outcome == "claimed"
    assert short.claim("t1", "k1", "crashed", "fp").outcome == "claimed"
    short.release("t1", "k1", "crashed")
    assert short.claim("t1", "k1", "crashed", "other").outcome == "claimed"


def test_a_finished_runs_webhook_is_discovered_once_and_leased_to_one_claimant(
    db: Database,
) -> None:
    run_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(
            Run(
                id=run_id,
                tenant_id="t1",
                agent="a",
                status="success",
                input={},
                meta={},
                webhook="https://example.com/h",
            )
        )
    store = WebhookStore(db)
    with ThreadPoolExecutor(4) as pool:
        created = sum(pool.map(lambda _: store.discover(), range(4)))
    assert created == 1
    with ThreadPoolExecutor(4) as pool:
        claims = [
            due for batch in pool.map(lambda _: store.claim_due(30), range(4)) for due in batch
        ]
    assert [(d.run_id, d.attempt, d.message_id) for d in claims] == [(run_id, 1, f"msg_{run_id}")]
    state = store.record(
        claims[0],
        started_at=utcnow(),
        status_code=500,
        error="HTTP 500",
        next_attempt_at=utcnow(),
    )
    assert state == "pending"
    again = store.claim_due(30)
    assert [d.attempt for d in again] == [2]
    assert (
        store.record(
            again[0], started_at=utcnow(), status_code=204, error=None, next_attempt_at=None
        )
        == "delivered"
    )
    shown = store.deliveries_of("t1", run_id)
    assert shown is not None and shown["state"] == "delivered"
    assert [a["status_code"] for a in shown["history"]] == [500, 204]
    assert store.deliveries_of("other-tenant", run_id) is None
