"""What starting a runtime does: a database already at the newest migration is not migrated
again (Alembic is not even loaded), one behind still is, and an embedded runtime on SQLite loads
no client for a backend it does not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from steward.store.migrate import HEAD_REVISION, alembic_config, is_at_head, upgrade

START_AND_STOP = """
import asyncio, json, sys
from steward import Steward
from steward.config import Settings
from steward.runtime import Runtime

async def main() -> None:
    runtime = Runtime.build(Settings(), Steward(), execute=True)
    await runtime.start()
    await runtime.stop()

asyncio.run(main())
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def start_and_stop_runtime(home: Path) -> set[str]:
    """Start and stop an embedded runtime on `home` in a fresh interpreter; the top-level
    packages it loaded."""
    env = {**os.environ, "STEWARD_HOME": str(home), "STEWARD_MODEL": "local"}
    result = subprocess.run(
        [sys.executable, "-c", START_AND_STOP],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=home.parent,
        env=env,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_head_revision_constant_is_the_migration_scripts_only_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert heads == [HEAD_REVISION]


def test_a_restart_on_a_database_at_head_loads_no_migration_machinery(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_and_stop_runtime(home)
    assert "alembic" in first  # a new database is migrated
    second = start_and_stop_runtime(home)
    assert second & {"alembic", "mako"} == set()
    assert second & {"aiohttp", "redis", "httpx", "jwt"} == set()


def test_a_database_one_migration_behind_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'steward.db'}"
    upgrade(url)
    assert is_at_head(url)
    command.downgrade(alembic_config(url), "-1")
    assert not is_at_head(url)
    upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert version.scalars().all() == [HEAD_REVISION]
    finally:
        engine.dispose()


def test_a_missing_database_file_is_not_at_head_and_is_not_created_by_asking(
    tmp_path: Path,
) -> None:
    path = tmp_path / "absent.db"
    assert not is_at_head(f"sqlite:///{path}")
    assert not path.exists()
