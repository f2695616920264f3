"""Tables of deployed agent versions and each agent's rollout state; migration 0020 creates them.

Versions are the operator's code, deployed with `steward deploy` (a CLI with database access,
never a tenant's API call: a version is code every worker executes), so they are not tenant rows;
every tenant sees them as versions of the agent's system assistant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from steward.store.schema import Base, utcnow


class AgentVersionRow(Base):
    """One immutable deployed version: its source, the hash of it, and what it declares."""

    __tablename__ = "agent_versions"

    agent: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    # The app file's own modules beside it that it imports ({name: source}), stored with it.
    modules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    filename: Mapped[str] = mapped_column(String(500))
    app_attr: Mapped[str | None] = mapped_column(String(200), default=None)
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The recorded eval gate decision for this version (None: never evaluated).
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_by: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentRolloutRow(Base):
    """Which deployed version of an agent new runs take."""

    __tablename__ = "agent_rollouts"

    agent: Mapped[str] = mapped_column(String(200), primary_key=True)
    stable_version: Mapped[int] = mapped_column(Integer)
    # The version stable before it: where `steward rollout rollback` returns.
    previous_version: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
