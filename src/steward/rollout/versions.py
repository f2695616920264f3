"""The deployed versions of agents and which one is stable: immutable rows, one stable pointer.

`deploy` stores a new version unless the newest one has the same code hash (deploying the same
code twice is one version). `promote` only moves the pointer; the eval gate is checked by
`steward.rollout.promotion` before it is called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from steward.errors import ApiError
from steward.rollout.manifest import Deployable
from steward.rollout.tables import AgentRolloutRow, AgentVersionRow
from steward.store.database import Database
from steward.store.schema import utcnow


class UnknownAgentVersion(ApiError):
    """No deployed version `version` of agent `agent`."""

    def __init__(self, agent: str, version: int) -> None:
        detail = f"agent {agent!r} has no deployed version {version}"
        super().__init__(404, "not-found", "Not found", detail)
        self.agent = agent
        self.version = version


@dataclass(frozen=True)
class AgentVersion:
    agent: str
    version: int
    code_hash: str
    filename: str
    app_attr: str | None
    manifest: dict[str, Any]
    evaluation: dict[str, Any] | None
    created_by: str | None
    created_at: datetime
    source: str = field(repr=False, default="")
    modules: dict[str, str] = field(repr=False, default_factory=dict)

    def to_json(self, *, stable: int | None = None) -> dict[str, Any]:
        created = self.created_at
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        return {
            "agent": self.agent,
            "version": self.version,
            "code_hash": self.code_hash,
            "filename": self.filename,
            "manifest": self.manifest,
            "evaluation": self.evaluation,
            "created_by": self.created_by,
            "created_at": created.isoformat(),
            "stable": stable == self.version,
        }


def _version(row: AgentVersionRow, *, with_source: bool) -> AgentVersion:
    return AgentVersion(
        agent=row.agent,
        version=row.version,
        code_hash=row.code_hash,
        filename=row.filename,
        app_attr=row.app_attr,
        manifest=dict(row.manifest or {}),
        evaluation=dict(row.evaluation) if row.evaluation is not None else None,
        created_by=row.created_by,
        created_at=row.created_at,
        source=row.source if with_source else "",
        modules=dict(row.modules or {}) if with_source else {},
    )


class VersionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def deploy(self, code: Deployable, *, created_by: str | None) -> tuple[AgentVersion, bool]:
        """Store `code` as the agent's next version; (version, created). An unchanged deploy
        returns the newest version and False. Two deploys at once get consecutive versions."""
        for _ in range(4):
            try:
                return self._deploy(code, created_by)
            except IntegrityError:  # another deploy took this version number first
                continue
        return self._deploy(code, created_by)

    def _deploy(self, code: Deployable, created_by: str | None) -> tuple[AgentVersion, bool]:
        with self.db.session() as session:
            newest = session.scalar(
                select(AgentVersionRow)
                .where(AgentVersionRow.agent == code.agent)
                .order_by(AgentVersionRow.version.desc())
                .limit(1)
                .with_for_update()
            )
            if newest is not None and newest.code_hash == code.code_hash:
                return _version(newest, with_source=False), False
            row = AgentVersionRow(
                agent=code.agent,
                version=(newest.version if newest is not None else 0) + 1,
                code_hash=code.code_hash,
                source=code.source,
                modules=code.modules,
                filename=code.filename,
                app_attr=code.app_attr,
                manifest=code.manifest,
                evaluation=None,
                created_by=created_by,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return _version(row, with_source=False), True

    def get(self, agent: str, version: int, *, with_source: bool = False) -> AgentVersion:
        with self.db.session() as session:
            row = session.get(AgentVersionRow, (agent, version))
            if row is None:
                raise UnknownAgentVersion(agent, version)
            return _version(row, with_source=with_source)

    def list(self, agent: str) -> list[AgentVersion]:
        """Newest first, without their source."""
        with self.db.session() as session:
            rows = session.scalars(
                select(AgentVersionRow)
                .where(AgentVersionRow.agent == agent)
                .order_by(AgentVersionRow.version.desc())
            )
            return [_version(row, with_source=False) for row in rows]

    def count(self, agent: str) -> int:
        with self.db.session() as session:
            found = session.scalar(select(func.count()).where(AgentVersionRow.agent == agent))
            return int(found or 0)

    def stable(self, agent: str) -> int | None:
        """The version new runs of `agent` take; None: the serving process's own code."""
        with self.db.session() as session:
            row = session.get(AgentRolloutRow, agent)
            return row.stable_version if row is not None else None

    def record_evaluation(self, agent: str, version: int, evaluation: dict[str, Any]) -> None:
        with self.db.session() as session:
            row = session.get(AgentVersionRow, (agent, version), with_for_update=True)
            if row is None:
                raise UnknownAgentVersion(agent, version)
            row.evaluation = evaluation

    def set_stable(self, agent: str, version: int) -> int | None:
        """Point new runs at `version`; returns the previous stable version."""
        with self.db.session() as session:
            if session.get(AgentVersionRow, (agent, version)) is None:
                raise UnknownAgentVersion(agent, version)
            row = session.get(AgentRolloutRow, agent, with_for_update=True)
            if row is None:
                session.add(
                    AgentRolloutRow(agent=agent, stable_version=version, updated_at=utcnow())
                )
                return None
            previous = row.stable_version
            if previous != version:
                row.previous_version = previous
            row.stable_version = version
            row.updated_at = utcnow()
            return previous

    def roll_back(self, agent: str) -> tuple[int, int] | None:
        """Make the version stable before the current one stable again: (from, to), or None
        when there is none to return to."""
        with self.db.session() as session:
            row = session.get(AgentRolloutRow, agent, with_for_update=True)
            if row is None or row.previous_version is None:
                return None
            moved = (row.stable_version, row.previous_version)
            row.stable_version, row.previous_version = row.previous_version, None
            row.updated_at = utcnow()
            return moved
