"""Alembic migrations create exactly the tables `store/schema.py` declares, on SQLite and
PostgreSQL, and walk down to nothing and back up again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from steward.store.database import normalise_url
from steward.store.migrate import alembic_config, upgrade
from steward.store.schema import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return f"sqlite:///{tmp_path / 'steward.db'}"


def schema_drift(url: str) -> list[object]:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"migration branches must be merged: heads {heads}"


def test_migrated_database_matches_the_declared_schema(database_url: str) -> None:
    upgrade(database_url)
    assert schema_drift(database_url) == []


def test_migrations_downgrade_to_nothing_and_upgrade_again(database_url: str) -> None:
    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "base")
    engine = sa.create_engine(normalise_url(database_url))
    try:
        tables = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert tables == set()
    upgrade(database_url)
    assert schema_drift(database_url) == []


def test_the_default_tenant_exists_after_migrating(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # again, as every start does: still one row
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id FROM tenants")).scalars().all()
    finally:
        engine.dispose()
    assert rows == ["default"]
