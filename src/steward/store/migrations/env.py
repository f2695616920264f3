"""Alembic environment: migrate Steward's tables on the URL set by `steward.store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool, text

from steward.batch import tables as batch_tables  # noqa: F401  (registers the batch tables)
from steward.memory import tables as memory_tables  # noqa: F401  (registers its tables)
from steward.rollout import tables as rollout_tables  # noqa: F401  (registers its tables)
from steward.store import platform_tables, security_tables  # noqa: F401  (registers their tables)
from steward.store.database import create_db_engine
from steward.store.schema import Base

_LOCK_KEY = 0x5354_4557  # "STEW"
config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_db_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            poolclass=pool.NullPool,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Concurrent starters wait here; the version check below then sees their work.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            context.run_migrations()
    engine.dispose()


run_migrations_online()
