"""Concurrent admin changes on real SQLite and PostgreSQL: two hook rotations or two settings
updates at once each keep their effect (no lost update, no failure on the first write).

The interleaving is forced, not hoped for: each thread is held at its first read of the row
until the other has read it too, which is exactly the moment a read-then-write loses an update.
Code that locks the row before reading never gets both threads there; the hold then lapses.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from steward.security.secrets import Keyring, SecretStore
from steward.security.tenant_settings import TenantSettingsStore
from steward.security.webhooks import HookStore, sign_standard
from steward.store import migrate
from steward.store.database import Database

HOLD_S = 1.0


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'security.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


class BothRead:
    """Holds each thread at its first SELECT from `table` until the other thread got there."""

    def __init__(self, engine: Engine, table: str) -> None:
        self.engine = engine
        self.table = table
        self.barrier = threading.Barrier(2, timeout=HOLD_S)
        self.held = threading.local()
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        reads_table = statement.lstrip().upper().startswith("SELECT") and (
            f"FROM {self.table}" in statement
        )
        if reads_table and not getattr(self.held, "done", False):
            self.held.done = True
            # Broken: the other thread waits for our lock, so we carry on alone.
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()

    def __enter__(self) -> BothRead:
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)


def test_concurrent_hook_rotations_each_return_a_secret_that_verifies(database: Database) -> None:
    hooks = HookStore(database, SecretStore(database, Keyring([("k1", os.urandom(32))])))
    hook_id, _first = hooks.create("acme", "hook_sink", "standard", 300)
    with BothRead(database.engine, "webhook_hooks"), ThreadPoolExecutor(2) as pool:
        rotated = list(pool.map(lambda _n: hooks.rotate("acme", hook_id), range(2)))
    hook = hooks.get(hook_id)
    assert hook is not None
    assert [name.rsplit(".", 1)[1] for name in hook.secret_names] == ["2", "3"]
    body, stamp = b'{"ok": true}', int(time.time())
    for secret in rotated:
        assert secret is not None
        headers = {
            "webhook-id": f"msg-{secret[-8:]}",
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign_standard(secret, f"msg-{secret[-8:]}", stamp, body),
        }
        hooks.verify(hook, headers, body)  # raises WebhookRejected for a lost secret


def test_concurrent_settings_updates_keep_both_changes(database: Database) -> None:
    store = TenantSettingsStore(database)
    changes: list[dict[str, Any]] = [{"webhook_tolerance_s": 60}, {"name": "Acme Inc."}]
    with BothRead(database.engine, "tenant_settings"), ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda change: store.update("acme", change), changes))
    assert store.load("acme") == {"webhook_tolerance_s": 60, "name": "Acme Inc."}


def test_concurrent_updates_of_different_settings_lose_neither(database: Database) -> None:
    store = TenantSettingsStore(database)
    store.update("acme", {"webhook_tolerance_s": 300})  # the rows exist: a pure lost update
    changes: list[dict[str, Any]] = [{"webhook_tolerance_s": 60}, {"retention_days": 7}]
    with BothRead(database.engine, "tenant_settings"), ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda change: store.update("acme", change), changes))
    assert store.load("acme") == {"webhook_tolerance_s": 60, "retention_days": 7, "name": "acme"}
