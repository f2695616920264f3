"""`ctx.secret()` reads, decrypts and audits off the event loop, on a real SQLite store: the
agent gets the masked `Secret`, the access is in the audit log, and no database statement of
the read ran on the loop's thread."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import event

from steward import Context, audit
from steward.audit import AuditLog
from steward.audit.signing import CheckpointSigner
from steward.durable.types import JsonObject
from steward.observe.tracing import Tracing
from steward.runs.agent import Limits, make_agent
from steward.security.secrets import Keyring, SecretStore
from steward.store import migrate
from steward.store.database import Database

TOKEN = "crm-token-0123456789-abcdef"


class Ask(BaseModel):
    message: str


async def _agent(ctx: Context, input: Ask) -> str:
    return input.message


AGENT = make_agent(
    _agent,
    name="reader",
    limits=Limits(max_steps=10, timeout_s=60),
    model="local",
    tools=(),
    description=None,
)


async def _journal(_name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
    return await fn()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'secrets.db'}"
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


def _context(secrets: SecretStore) -> Context:
    return Context(
        run_id="run-1",
        tenant_id="acme",
        thread_id=None,
        user_id=None,
        agent=AGENT,
        tools={},
        journal=_journal,
        tracing=Tracing.disabled(),
        emit=lambda *_args: None,
        deadline=time.time() + 60,
        secrets=secrets,
    )


def test_a_secret_is_read_decrypted_and_audited_off_the_event_loop(
    database: Database, tmp_path: Path
) -> None:
    audit_log = AuditLog(database, CheckpointSigner(tmp_path / "keys"))
    audit.install(audit_log)
    secrets = SecretStore(
        database, Keyring([("k1", os.urandom(32))]), audit=lambda t, k, d: audit.record(t, k, d)
    )
    secrets.set("acme", "crm_token", TOKEN)
    threads: list[tuple[int, str]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        threads.append((threading.get_ident(), statement.split()[0].upper()))

    async def read() -> tuple[int, Any]:
        event.listen(database.engine, "before_cursor_execute", seen)
        try:
            return threading.get_ident(), await _context(secrets).secret("crm_token")
        finally:
            event.remove(database.engine, "before_cursor_execute", seen)

    try:
        loop_thread, secret = asyncio.run(read())
    finally:
        audit.install(None)
    assert secret.reveal() == TOKEN
    assert TOKEN not in repr(secret) and TOKEN not in str(secret)
    assert {kind for _, kind in threads} >= {"SELECT", "INSERT"}  # the read and its audit
    assert loop_thread not in {thread for thread, _ in threads}
    kinds = [
        (json.loads(r["entry"])["kind"], json.loads(r["entry"])["data"].get("run_id"))
        for r in audit_log.export("acme")["records"]
    ]
    assert ("secret.accessed", "run-1") in kinds
