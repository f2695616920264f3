"""The audit log against tampering, on SQLite and PostgreSQL: the database refuses UPDATE and
DELETE, and every edit made behind its back (triggers dropped) is found by `verify_export`.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from steward.audit import AuditLog, verify_export
from steward.audit.canonical import canonical_json
from steward.audit.merkle import leaf_hash
from steward.audit.signing import CheckpointSigner
from steward.store import migrate
from steward.store.database import Database

POSTGRES_ADMIN_URL = os.environ.get(
    "STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TENANT = "acme"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        name = None
    else:
        name = f"steward_audit_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()
    if name is not None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def signer(tmp_path: Path) -> CheckpointSigner:
    return CheckpointSigner(tmp_path / "audit-keys")


@pytest.fixture
def audit(database: Database, signer: CheckpointSigner) -> AuditLog:
    audit = AuditLog(database, signer, checkpoint_every=4)
    for index in range(10):
        audit.record(TENANT, "auth.failure", {"n": index, "path": "/runs"})
    audit.record("other", "key.created", {"key_id": "k1"})
    return audit


def _verify(audit: AuditLog, signer: CheckpointSigner, export: dict | None = None):  # type: ignore[no-untyped-def]
    return verify_export(export or audit.export(TENANT), signer.public_keys())


def _behind_the_triggers(db: Database, *statements: str, **params: object) -> None:
    """What an attacker with database access does: switch the triggers off, then edit."""
    with db.engine.begin() as conn:
        if db.is_sqlite:
            for table in ("audit_records", "audit_checkpoints"):
                for op in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))
        else:
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"))
        for statement in statements:
            conn.execute(text(statement), params)


def test_untouched_log_verifies_with_checkpoints_every_n(
    audit: AuditLog, signer: CheckpointSigner
) -> None:
    report = _verify(audit, signer)
    assert report.ok, report.findings
    assert (report.records, report.checkpoints, report.signed_records) == (10, 2, 8)
    assert audit.checkpoint(TENANT) is not None  # the tail of 2 gets signed on demand
    assert _verify(audit, signer).signed_records == 10
    assert verify_export(audit.export("other"), signer.public_keys()).records == 1


@pytest.mark.parametrize("statement", ["UPDATE {t} SET kind = 'x'", "DELETE FROM {t}"])
@pytest.mark.parametrize("table", ["audit_records", "audit_checkpoints"])
def test_database_refuses_update_and_delete(
    audit: AuditLog, database: Database, statement: str, table: str
) -> None:
    column_fix = statement if table == "audit_records" else statement.replace("kind", "key_id")
    with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
        conn.execute(text(column_fix.format(t=table)))


def test_modified_record_is_reported_as_the_first_bad_one(
    audit: AuditLog, database: Database, signer: CheckpointSigner
) -> None:
    _behind_the_triggers(
        database,
        "UPDATE audit_records SET entry = replace(entry, :old, :new) "
        "WHERE tenant_id = 'acme' AND seq = 7",
        old='"n":6',
        new='"n":66',
    )
    report = _verify(audit, signer)
    assert report.first_bad is not None and report.first_bad.seq == 7
    assert "modified" in report.first_bad.problem


def test_deleted_record_is_found(
    audit: AuditLog, database: Database, signer: CheckpointSigner
) -> None:
    _behind_the_triggers(database, "DELETE FROM audit_records WHERE tenant_id = 'acme' AND seq = 3")
    report = _verify(audit, signer)
    assert report.first_bad is not None and report.first_bad.seq == 3
    assert "deleted" in report.first_bad.problem


def test_reordered_records_are_found(
    audit: AuditLog, database: Database, signer: CheckpointSigner
) -> None:
    # Swap the content of records 2 and 5, keeping each row's stored hash consistent with it.
    _behind_the_triggers(
        database,
        "UPDATE audit_records SET seq = -2 WHERE tenant_id = 'acme' AND seq = 2",
        "UPDATE audit_records SET seq = 2 WHERE tenant_id = 'acme' AND seq = 5",
        "UPDATE audit_records SET seq = 5 WHERE tenant_id = 'acme' AND seq = -2",
    )
    report = _verify(audit, signer)
    assert report.first_bad is not None and report.first_bad.seq == 2


def test_truncated_log_is_caught_by_the_checkpoint(
    audit: AuditLog, database: Database, signer: CheckpointSigner
) -> None:
    _behind_the_triggers(database, "DELETE FROM audit_records WHERE tenant_id = 'acme' AND seq > 6")
    report = _verify(audit, signer)
    assert not report.ok
    assert any("truncated" in f.problem for f in report.findings)
    assert report.first_bad is not None and report.first_bad.seq == 5  # after the good head at 4


def test_rehashing_the_whole_chain_is_caught_by_the_signed_checkpoint(
    audit: AuditLog, database: Database, signer: CheckpointSigner
) -> None:
    """Rewrite record 2 and recompute every stored hash: only the signature can tell."""
    export = audit.export(TENANT)
    entry = json.loads(export["records"][1]["entry"])
    entry["data"]["path"] = "/nothing-happened"
    forged = canonical_json(entry).decode()
    _behind_the_triggers(
        database,
        "UPDATE audit_records SET entry = :entry, leaf_hash = :leaf "
        "WHERE tenant_id = 'acme' AND seq = 2",
        entry=forged,
        leaf=leaf_hash(forged.encode()).hex(),
    )
    report = _verify(audit, signer)
    # Both heads over record 2 fail; nothing before it is signed on its own, so 1 is the first
    # record that can no longer be trusted.
    assert [f.seq for f in report.findings] == [1, 1]
    assert all("no longer match the signed root" in f.problem for f in report.findings)


def test_forged_checkpoint_is_rejected(
    audit: AuditLog, database: Database, signer: CheckpointSigner, tmp_path: Path
) -> None:
    """A checkpoint signed by a key the verifier does not trust, or with a bent signature."""
    intruder = CheckpointSigner(tmp_path / "intruder-keys")
    statement = canonical_json(
        {
            "v": 1,
            "tenant": TENANT,
            "tree_size": 10,
            "root_hash": "00" * 32,
            "key_id": signer.key_id,
            "time": "2026-01-01T00:00:00.000Z",
        }
    )
    signature = base64.b64encode(intruder.sign(statement)).decode()
    _behind_the_triggers(
        database,
        "INSERT INTO audit_checkpoints (tenant_id, tree_size, root_hash, key_id, statement, "
        "signature, created_at) VALUES ('acme', 10, :root, :kid, :st, :sig, CURRENT_TIMESTAMP)",
        root="00" * 32,
        kid=signer.key_id,
        st=statement.decode(),
        sig=signature,
    )
    report = _verify(audit, signer)
    assert [f.problem for f in report.findings] == [
        "checkpoint at 10: signature does not verify (forged checkpoint)"
    ]
    assert report.first_bad is not None and report.first_bad.seq == 9


def test_checkpoint_from_an_unknown_key_is_rejected(
    audit: AuditLog, signer: CheckpointSigner, tmp_path: Path
) -> None:
    export = audit.export(TENANT)
    other = CheckpointSigner(tmp_path / "elsewhere")
    report = verify_export(export, other.public_keys())
    assert report.findings and all("unknown key" in f.problem for f in report.findings)


def test_rotated_key_signs_new_checkpoints_and_old_ones_still_verify(
    audit: AuditLog, signer: CheckpointSigner
) -> None:
    first = signer.key_id
    second = signer.rotate()
    audit.record(TENANT, "key.revoked", {"key_id": "k2"})
    made = audit.checkpoint(TENANT)
    assert made is not None and made.key_id == second != first
    report = _verify(audit, signer)
    assert report.ok and report.signed_records == 11


def test_checkpoint_pending_signs_tails_older_than_the_interval(
    database: Database, signer: CheckpointSigner
) -> None:
    audit = AuditLog(database, signer, checkpoint_every=1000, checkpoint_interval_s=0.0)
    audit.record(TENANT, "secret.accessed", {"name": "db"})
    assert [c.tree_size for c in audit.checkpoint_pending()] == [1]
    assert audit.checkpoint_pending() == []
