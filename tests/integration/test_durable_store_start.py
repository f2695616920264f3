"""Processes that start side by side on one embedded store wait for each other's locks."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy import text

from steward.durable.dbos_engine import _sqlite_engine


def test_the_journal_waits_for_a_store_another_process_holds_locked(tmp_path: Path) -> None:
    # `steward serve` and `steward worker` started together: one migrates the store while
    # the other opens it. The opener used to give up after sqlite3's default 5 s ("database
    # is locked") and exit, leaving every run it should execute waiting.
    path = tmp_path / "dbos.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE migrating (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(7.0, holder.execute, args=("COMMIT",))  # longer than 5 s
    release.start()
    engine = _sqlite_engine(f"sqlite:///{path}")
    assert engine is not None
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        release.join()
        holder.close()
        engine.dispose()
