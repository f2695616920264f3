"""The audit log's writing side on real SQLite and PostgreSQL: checkpoints extend the stored
Merkle frontier, numbers are written in RFC 8785 form while older entries still verify, and the
background writer rides out a database outage without losing, repeating or reordering events.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, select, text

from steward.audit import AuditLog, verify_export
from steward.audit.background import BackgroundRecorder
from steward.audit.canonical import canonical_json
from steward.audit.merkle import leaf_hash, root_hash
from steward.audit.signing import CheckpointSigner
from steward.store import migrate
from steward.store.database import Database
from steward.store.security_tables import AuditCheckpoint, AuditRecord
from tests.conftest import POSTGRES_ADMIN_URL

TENANT = "acme"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> CheckpointSigner:
    return CheckpointSigner(tmp_path / "audit-keys")


def _verify(audit: AuditLog, signer: CheckpointSigner) -> Any:
    audit.checkpoint(TENANT)
    return verify_export(audit.export(TENANT), signer.public_keys())


def _drop_append_only_triggers(db: Database) -> None:
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_records_no_delete"))
        else:
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))


def test_checkpoint_reads_only_the_records_after_the_last_checkpoint(
    database: Database, signer: CheckpointSigner
) -> None:
    audit = AuditLog(database, signer, checkpoint_every=1000)
    for n in range(13):
        audit.record(TENANT, "auth.failure", {"n": n})
    assert audit.checkpoint(TENANT) is not None
    for n in range(13, 20):
        audit.record(TENANT, "auth.failure", {"n": n})
    with database.session() as session:
        leaves = [
            bytes.fromhex(h)
            for h in session.scalars(select(AuditRecord.leaf_hash).order_by(AuditRecord.seq))
        ]
    # Remove the records the first checkpoint covers: a checkpoint that rereads them can no
    # longer produce the head of all 20; one that extends the stored frontier still does.
    _drop_append_only_triggers(database)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq <= 13"))
    second = audit.checkpoint(TENANT)
    assert second is not None
    assert (second.tree_size, second.root_hash) == (20, root_hash(leaves).hex())


def test_checkpoints_store_the_frontier_of_the_tree_they_sign(
    database: Database, signer: CheckpointSigner
) -> None:
    audit = AuditLog(database, signer, checkpoint_every=1000)
    for n in range(11):  # 11 = 8 + 2 + 1: three complete subtrees
        audit.record(TENANT, "auth.failure", {"n": n})
    audit.checkpoint(TENANT)
    with database.session() as session:
        frontier = session.scalar(select(AuditCheckpoint.frontier))
    assert frontier is not None and len(frontier.split(",")) == 3


def test_new_entries_write_numbers_in_rfc_8785_form(
    database: Database, signer: CheckpointSigner
) -> None:
    audit = AuditLog(database, signer)
    audit.record(TENANT, "cap.hit", {"small": 1e-7, "large": 1e16})
    entry = audit.export(TENANT)["records"][0]["entry"]
    assert '"large":10000000000000000' in entry and '"small":1e-7' in entry
    assert _verify(audit, signer).ok


def test_chains_holding_entries_of_format_1_still_verify(
    database: Database, signer: CheckpointSigner
) -> None:
    # What an older Steward stored: format 1, numbers in Python's repr form, already signed.
    old = {
        "v": 1,
        "tenant": TENANT,
        "seq": 1,
        "kind": "cap.hit",
        "time": "2026-11-01T00:00:00.000Z",
    }
    entry = canonical_json({**old, "data": {"spent": 1e-7, "cap": 1e16}}, legacy=True)
    assert b"1e-07" in entry and b"1e+16" in entry
    with database.session() as session:
        session.add(
            AuditRecord(
                tenant_id=TENANT,
                seq=1,
                kind="cap.hit",
                entry=entry.decode(),
                leaf_hash=leaf_hash(entry).hex(),
            )
        )
    audit = AuditLog(database, signer)
    assert audit.checkpoint(TENANT) is not None
    audit.record(TENANT, "cap.hit", {"spent": 1e-7, "cap": 1e16})
    report = _verify(audit, signer)
    assert report.ok, report.findings
    assert report.signed_records == 2


# -- the background writer through an outage -------------------------------------------------


class Outage:
    """Makes the real database refuse the audit writer, then lets it back in."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock: sqlite3.Connection | None = None
        if db.is_sqlite:
            # Writers give up on a held lock after 50 ms instead of 10 s, so the outage shows as
            # errors the writer must retry, not as one long wait inside the driver.
            event.listen(db.engine, "connect", _short_busy_timeout)
            db.engine.dispose()
        self.name = db.url.rsplit("/", 1)[-1]

    def begin(self) -> None:
        if self.db.is_sqlite:
            self._lock = sqlite3.connect(self.db.url.split("///", 1)[-1], isolation_level=None)
            self._lock.execute("BEGIN EXCLUSIVE")
            return
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (self.name,),
            )

    def end(self) -> None:
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None
            return
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=50")


def _wait_until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def _outage_seen(caplog: pytest.LogCaptureFixture) -> bool:
    return any(r.name == "steward.audit" and r.levelno >= 30 for r in caplog.records)


def _assert_landed_in_order(audit: AuditLog, signer: CheckpointSigner, count: int) -> None:
    records = audit.export(TENANT)["records"]
    assert [json.loads(r["entry"])["data"]["n"] for r in records] == list(range(count))
    assert [r["seq"] for r in records] == list(range(1, count + 1))
    report = _verify(audit, signer)
    assert report.ok, report.findings


def test_background_writer_loses_no_event_through_a_database_outage(
    database: Database, signer: CheckpointSigner, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(database, signer, checkpoint_every=7)
    outage = Outage(database)
    recorder = BackgroundRecorder(audit)
    for n in range(3):
        recorder.record(TENANT, "tool.decision", {"n": n})
    _wait_until(lambda: recorder.pending() == 0)
    outage.begin()
    try:
        for n in range(3, 25):
            recorder.record(TENANT, "tool.decision", {"n": n})
        _wait_until(lambda: _outage_seen(caplog))
    finally:
        outage.end()
    recorder.drain(timeout_s=30)
    _assert_landed_in_order(audit, signer, 25)


def test_background_writer_holds_producers_back_when_its_queue_is_full(
    database: Database, signer: CheckpointSigner, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(database, signer)
    outage = Outage(database)
    recorder = BackgroundRecorder(audit, capacity=5)
    produced = threading.Event()

    def produce() -> None:
        for n in range(20):
            recorder.record(TENANT, "tool.decision", {"n": n})
        produced.set()

    outage.begin()
    producer = threading.Thread(target=produce, daemon=True)
    try:
        producer.start()
        _wait_until(lambda: _outage_seen(caplog) and recorder.pending() == 5)
        # Memory stays bounded: 5 queued, 1 being retried, the producer waits for room.
        assert not produced.is_set()
    finally:
        outage.end()
    producer.join(30)
    assert produced.is_set()
    recorder.drain(timeout_s=30)
    _assert_landed_in_order(audit, signer, 20)


# -- group commit ------------------------------------------------------------------------------


def _count_record_inserts(db: Database) -> list[int]:
    """A one-item list counting the statements that inserted audit records (and succeeded)."""
    count = [0]

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_RECORDS"):
            count[0] += 1

    event.listen(db.engine, "after_cursor_execute", seen)
    return count


def test_background_writer_appends_the_waiting_events_in_one_transaction(
    database: Database, signer: CheckpointSigner, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(database, signer, checkpoint_every=7)
    outage = Outage(database)  # holds the writer back while the events queue up behind it
    inserts = _count_record_inserts(database)
    recorder = BackgroundRecorder(audit)
    outage.begin()
    try:
        for n in range(120):  # two tenants, interleaved
            recorder.record(TENANT if n % 3 else "other", "tool.decision", {"n": n})
        _wait_until(lambda: _outage_seen(caplog))
    finally:
        outage.end()
    assert recorder.wait_written()
    # The event the writer held through the outage, then everything queued behind it.
    assert inserts[0] <= 2
    recorder.drain()
    mine = [n for n in range(120) if n % 3]
    records = audit.export(TENANT)["records"]
    assert [json.loads(r["entry"])["data"]["n"] for r in records] == mine
    assert [r["seq"] for r in records] == list(range(1, len(mine) + 1))
    others = audit.export("other")["records"]
    assert [json.loads(r["entry"])["data"]["n"] for r in others] == list(range(0, 120, 3))
    for tenant in (TENANT, "other"):
        # The batch crossed multiples of `checkpoint_every`: each tenant's head was signed.
        assert audit.export(tenant)["checkpoints"], tenant
        audit.checkpoint(tenant)
        report = verify_export(audit.export(tenant), signer.public_keys())
        assert report.ok, report.findings


def test_a_batch_whose_commit_outcome_was_lost_is_not_appended_twice(
    database: Database, signer: CheckpointSigner
) -> None:
    from sqlalchemy.exc import OperationalError

    from steward.audit.log import Pending, now_text

    audit = AuditLog(database, signer)
    audit.record(TENANT, "key.created", {"n": -1})
    events = [Pending(TENANT, "tool.decision", {"n": n}, now_text()) for n in range(5)]

    def lose_the_answer(conn: Any) -> None:  # the COMMIT happens; its answer does not arrive
        conn.connection.dbapi_connection.commit()
        raise OperationalError("COMMIT", {}, ConnectionError("connection lost"))

    event.listen(database.engine, "commit", lose_the_answer, once=True)
    with pytest.raises(OperationalError):
        audit.append_many(events)
    # Retried with the same events: found in the log, not appended again.
    assert audit.append_many(events) == [2, 3, 4, 5, 6]
    more = [Pending(TENANT, "tool.decision", {"n": n}, now_text()) for n in range(5, 7)]
    assert audit.append_many(more) == [7, 8]
    records = audit.export(TENANT)["records"]
    assert [json.loads(r["entry"])["data"]["n"] for r in records] == list(range(-1, 7))
    assert _verify(audit, signer).ok


def test_two_writers_of_one_tenant_keep_one_chain(
    database: Database, signer: CheckpointSigner
) -> None:
    # Each log remembers the head it wrote last; the other's appends move it behind its back.
    first, second = AuditLog(database, signer), AuditLog(database, signer)
    for n in range(0, 12, 2):
        first.record(TENANT, "tool.decision", {"n": n})
        second.record(TENANT, "tool.decision", {"n": n + 1})
    _assert_landed_in_order(first, signer, 12)
