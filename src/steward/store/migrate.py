"""Run Alembic migrations programmatically (`steward migrate`, and at start in embedded mode)."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config

from steward.store.database import normalise_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`; safe to call on every start, concurrently.

    Processes starting together (`steward serve` beside `steward worker`) take turns: a file
    lock beside a SQLite database, an advisory lock on PostgreSQL (taken in `env.py`).
    """
    url = normalise_url(url)
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
