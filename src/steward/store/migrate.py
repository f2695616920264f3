"""Run Alembic migrations programmatically (`steward migrate`, and at start in embedded mode).

Every start calls `upgrade`; a database already at the newest revision is recognised with one
query, so Alembic (and the migration scripts) is loaded only when there is something to do.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from steward.store.database import normalise_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The newest migration script's revision; tests/integration/test_startup_work.py checks that
# it is the scripts' only head, so a new migration cannot be forgotten here.
HEAD_REVISION = "0020"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def is_at_head(url: str) -> bool:
    """Whether the database at `url` records `HEAD_REVISION` as its only revision.

    Anything else (no database file yet, no version table, an older or unknown revision, a
    server that does not answer) is False, and `upgrade` leaves the case to Alembic as before.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            return False
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return False
    finally:
        engine.dispose()
    return [row[0] for row in rows] == [HEAD_REVISION]


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`; safe to call on every start, concurrently.

    Processes starting together (`steward serve` beside `steward worker`) take turns: a file
    lock beside a SQLite database, an advisory lock on PostgreSQL (taken in `env.py`).
    """
    url = normalise_url(url)
    if revision in ("head", HEAD_REVISION) and is_at_head(url):
        return
    from alembic import command

    if not url.startswith("sqlite") or url.endswith(":memory:"):
        command.upgrade(alembic_config(url), revision)
        return
    lock_path = Path(url.split("///", 1)[-1] + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            command.upgrade(alembic_config(url), revision)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
