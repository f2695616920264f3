"""The configured store for CLI commands: settings from the environment, the database migrated.

One place for every command group (`cli.main` and the groups it registers import it, never each
other, so the CLI has no import cycle)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.store.database import Database


def load_settings() -> Settings:
    from steward.config import Settings

    return Settings()


def migrated(configured: Settings) -> Settings:
    """`configured`, after bringing its database to the newest schema."""
    from steward.store import migrate

    configured.home.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(configured.resolved_database_url)
    return configured


def open_database(configured: Settings) -> Database:
    """The store of `configured`, migrated."""
    from steward.store.database import Database

    return Database(migrated(configured).resolved_database_url)
