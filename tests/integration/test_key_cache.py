"""The authenticated-key cache: a key seen within the TTL costs no database read, and revoking
still takes effect — at once through the same process, within the TTL from another process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from steward.security.keys import KeyStore
from steward.store import migrate
from steward.store.database import Database
from tests.conftest import StewardProcess, make_process

CROSS_PROCESS_TTL_S = 1.0


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


class StatementCounter:
    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


def test_an_authenticated_key_is_served_from_the_cache_without_a_database_read(
    database: Database,
) -> None:
    keys = KeyStore(database, cache_ttl_s=60)
    secret = keys.create("hot", tenant_id="acme", role="runner").secret
    first = keys.authenticate(secret)
    statements = StatementCounter(database)
    again = keys.authenticate(secret)
    assert first is not None and again == first
    assert keys.cached(secret) == first
    assert statements.count == 0


def test_the_cache_holds_only_keys_that_authenticated(database: Database) -> None:
    keys = KeyStore(database, cache_ttl_s=60)
    secret = keys.create("hot", tenant_id="acme").secret
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert keys.authenticate(wrong) is None
    assert keys.cached(wrong) is None
    statements = StatementCounter(database)
    assert keys.authenticate(wrong) is None
    assert statements.count > 0  # a refused key is looked up every time, never remembered


def test_a_zero_ttl_reads_the_key_on_every_request(database: Database) -> None:
    keys = KeyStore(database, cache_ttl_s=0)
    secret = keys.create("cold", tenant_id="acme").secret
    assert keys.authenticate(secret) is not None
    statements = StatementCounter(database)
    assert keys.authenticate(secret) is not None
    assert statements.count > 0


def test_a_revoked_key_is_refused_by_the_same_store_right_after_revocation(
    database: Database,
) -> None:
    keys = KeyStore(database, cache_ttl_s=3600)
    created = keys.create("short-lived", tenant_id="acme")
    other = keys.create("other", tenant_id="acme")
    assert keys.authenticate(created.secret) is not None
    assert keys.authenticate(other.secret) is not None
    assert keys.revoke(created.id, "acme")
    assert keys.cached(created.secret) is None
    assert keys.authenticate(created.secret) is None
    assert keys.cached(other.secret) is not None  # revoking one key keeps the others cached


def test_a_lookup_that_raced_a_revocation_is_not_cached(database: Database) -> None:
    keys = KeyStore(database, cache_ttl_s=3600)
    created = keys.create("racer", tenant_id="acme")
    original = keys._lookup

    def lookup_then_revoke(presented: str) -> Any:
        found = original(presented)  # read while the key was still valid ...
        keys.revoke(created.id, "acme")  # ... and revoked before it could be remembered
        return found

    keys._lookup = lookup_then_revoke  # type: ignore[method-assign]
    assert keys.authenticate(created.secret) is not None  # that one request was already in
    keys._lookup = original  # type: ignore[method-assign]
    assert keys.cached(created.secret) is None
    assert keys.authenticate(created.secret) is None


# -- through a real server ---------------------------------------------------------------------


@pytest.fixture
def cached_server(tmp_path: Path) -> Iterator[StewardProcess]:
    process = make_process(tmp_path, STEWARD_KEY_CACHE_TTL_S=str(CROSS_PROCESS_TTL_S))
    process.start()
    yield process
    process.stop()


def _search(server: StewardProcess, key: str) -> int:
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=30) as client:
        return client.post("/assistants/search").status_code


def test_a_key_revoked_through_the_api_is_refused_on_the_next_request(
    cached_server: StewardProcess,
) -> None:
    admin = cached_server.create_key("admin")
    with httpx.Client(base_url=cached_server.url, headers={"x-api-key": admin}) as client:
        made = client.post("/admin/keys", json={"name": "short-lived"}).json()
        assert _search(cached_server, made["secret"]) == 200  # now in the server's cache
        assert client.delete(f"/admin/keys/{made['id']}").status_code == 204
    assert _search(cached_server, made["secret"]) == 401


def test_a_key_revoked_from_another_process_is_refused_once_the_ttl_has_passed(
    cached_server: StewardProcess,
) -> None:
    admin = cached_server.create_key("admin")
    with httpx.Client(base_url=cached_server.url, headers={"x-api-key": admin}) as client:
        made = client.post("/admin/keys", json={"name": "revoked-by-cli"}).json()
    assert _search(cached_server, made["secret"]) == 200
    cached_server.cli("keys", "revoke", made["id"])  # another process: no cache to drop
    time.sleep(CROSS_PROCESS_TTL_S + 0.2)
    assert _search(cached_server, made["secret"]) == 401
