"""Assistants: configured, versioned uses of a graph (a served agent), per tenant.

Every served agent is also an assistant of every tenant, its "system" assistant, whose id is
the agent's name (so `assistant_id="support"` names the agent, as it always has). Stored
assistants add a configuration, context and metadata; each change stores a new immutable
version, and `set_latest` picks which version is in use. Filters on JSON (metadata) are checked
here rather than in SQL, so SQLite and PostgreSQL agree exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select

from steward.store.database import Database
from steward.store.platform_tables import AssistantRow, AssistantVersionRow
from steward.store.schema import utcnow

SortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]
SYSTEM = {"created_by": "system"}


class AssistantExists(Exception):
    """`create` with an id already taken (and `if_exists="raise"`)."""


class SystemAssistant(Exception):
    """A system assistant (an agent of the code) cannot be changed or deleted through the API."""


class UnknownVersion(Exception):
    pass


class DeployedVersion(Exception):
    """A deployed agent version (`steward.rollout`) is made the stable one only by the operator's
    eval-gated `steward rollout promote`: it is global code every tenant runs, never a tenant's
    choice."""


@dataclass(frozen=True)
class AssistantRecord:
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    version: int
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def to_json(self, *, with_updated: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "assistant_id": self.assistant_id,
            "graph_id": self.graph_id,
            "name": self.name,
            "description": self.description,
            "config": self.config,
            "context": self.context,
            "metadata": self.metadata,
            "version": self.version,
            "created_at": _iso(self.created_at),
        }
        if with_updated:
            body["updated_at"] = _iso(self.updated_at)
        return body

    def sort_key(self, by: SortBy) -> Any:
        value = getattr(self, by)
        return _aware(value) if isinstance(value, datetime) else value


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _aware(moment).isoformat()


def _record(row: AssistantRow | AssistantVersionRow, assistant_id: str) -> AssistantRecord:
    updated = row.updated_at if isinstance(row, AssistantRow) else row.created_at
    return AssistantRecord(
        assistant_id=assistant_id,
        graph_id=row.graph_id,
        name=row.name,
        description=row.description,
        version=row.version,
        config=dict(row.config or {}),
        context=dict(row.context or {}),
        metadata=dict(row.meta or {}),
        created_at=row.created_at,
        updated_at=updated,
    )


def contains(document: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    """Whether `document` has every key of `wanted` with an equal value (exact match per key)."""
    return not wanted or all(k in document and document[k] == v for k, v in wanted.items())


@dataclass(frozen=True)
class Filters:
    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None

    def match(self, record: AssistantRecord) -> bool:
        if self.graph_id is not None and record.graph_id != self.graph_id:
            return False
        if self.name is not None and self.name.lower() not in record.name.lower():
            return False
        return contains(record.metadata, self.metadata)


class AssistantStore:
    """`graphs()` lists the served agents as (name, description, metadata): their system
    assistants (whose metadata also says `created_by: system`)."""

    def __init__(
        self,
        db: Database,
        graphs: Callable[[], Iterable[tuple[str, str | None, dict[str, Any]]]],
    ) -> None:
        self.db = db
        self._graphs = graphs
        self._started = utcnow()
        # A system assistant's deployed versions (steward.rollout), newest first.
        self.deployed: Callable[[str], list[AssistantRecord]] | None = None

    # -- system assistants ---------------------------------------------------------------------

    def system(self) -> dict[str, AssistantRecord]:
        return {
            name: AssistantRecord(
                assistant_id=name,
                graph_id=name,
                name=name,
                description=description,
                version=1,
                metadata={**metadata, **SYSTEM},
                created_at=self._started,
                updated_at=self._started,
            )
            for name, description, metadata in self._graphs()
        }

    def is_graph(self, graph_id: str) -> bool:
        return graph_id in self.system()

    # -- reads ---------------------------------------------------------------------------------

    def get(self, tenant_id: str, assistant_id: str) -> AssistantRecord | None:
        """A graph's name always means its system assistant (no stored one can take it)."""
        system = self.system().get(assistant_id)
        if system is not None:
            return system
        with self.db.session() as session:
            row = session.get(AssistantRow, (tenant_id, assistant_id))
            return _record(row, row.id) if row is not None else None

    def _stored(self, tenant_id: str, filters: Filters) -> list[AssistantRecord]:
        query = select(AssistantRow).where(AssistantRow.tenant_id == tenant_id)
        if filters.graph_id is not None:
            query = query.where(AssistantRow.graph_id == filters.graph_id)
        with self.db.session() as session:
            rows = session.scalars(query.execution_options(yield_per=500))
            return [r for r in (_record(row, row.id) for row in rows) if filters.match(r)]

    def search(
        self,
        tenant_id: str,
        filters: Filters,
        *,
        limit: int,
        offset: int,
        sort_by: SortBy = "created_at",
        descending: bool = True,
    ) -> list[AssistantRecord]:
        found = self._stored(tenant_id, filters)
        found += [record for record in self.system().values() if filters.match(record)]
        found.sort(key=lambda r: r.assistant_id)  # ties in the sort key keep a stable order
        found.sort(key=lambda r: r.sort_key(sort_by), reverse=descending)
        return found[offset : offset + limit]

    def count(self, tenant_id: str, filters: Filters) -> int:
        system = sum(1 for record in self.system().values() if filters.match(record))
        return len(self._stored(tenant_id, filters)) + system

    def versions(
        self,
        tenant_id: str,
        assistant_id: str,
        *,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
    ) -> list[AssistantRecord] | None:
        """Newest first; None for an unknown assistant. A system assistant has one version."""
        system = self.system().get(assistant_id)
        if system is not None:
            found = (self.deployed(assistant_id) if self.deployed else []) or [system]
            matching = [r for r in found if contains(r.metadata, metadata)]
            return matching[offset : offset + limit]
        with self.db.session() as session:
            if session.get(AssistantRow, (tenant_id, assistant_id)) is None:
                return None
            rows = session.scalars(
                select(AssistantVersionRow)
                .where(
                    AssistantVersionRow.tenant_id == tenant_id,
                    AssistantVersionRow.assistant_id == assistant_id,
                )
                .order_by(AssistantVersionRow.version.desc())
            )
            records = [_record(row, assistant_id) for row in rows]
        matching = [r for r in records if contains(r.metadata, metadata)]
        return matching[offset : offset + limit]

    # -- writes --------------------------------------------------------------------------------

    def create(
        self,
        tenant_id: str,
        record: AssistantRecord,
        *,
        if_exists: Literal["raise", "do_nothing"] = "raise",
    ) -> AssistantRecord:
        """Store a new assistant at version 1 (its id chosen by the caller, or a new uuid)."""
        assistant_id = record.assistant_id or str(uuid.uuid4())
        existing = self.get(tenant_id, assistant_id)
        if existing is not None:
            if if_exists == "do_nothing":
                return existing
            raise AssistantExists(assistant_id)
        now = utcnow()
        record = replace(
            record, assistant_id=assistant_id, version=1, created_at=now, updated_at=now
        )
        with self.db.session() as session:
            session.add(_row(tenant_id, record))
            session.add(_version_row(tenant_id, record))
        return record

    def update(
        self, tenant_id: str, assistant_id: str, changes: dict[str, Any]
    ) -> AssistantRecord | None:
        """Store a new version with `changes` (config/context replaced, metadata merged)."""
        if assistant_id in self.system():
            raise SystemAssistant(assistant_id)
        with self.db.session() as session:
            row = session.get(AssistantRow, (tenant_id, assistant_id), with_for_update=True)
            if row is None:
                return None
            newest = session.scalar(
                select(func.max(AssistantVersionRow.version)).where(
                    AssistantVersionRow.tenant_id == tenant_id,
                    AssistantVersionRow.assistant_id == assistant_id,
                )
            )
            current = _record(row, assistant_id)
            metadata = {**current.metadata, **(changes.get("metadata") or {})}
            updated = replace(
                current,
                **{k: v for k, v in changes.items() if k != "metadata" and v is not None},
                metadata=metadata,
                version=int(newest or 0) + 1,
                updated_at=utcnow(),
            )
            version = _version_row(tenant_id, updated)
            version.created_at = updated.updated_at
            session.add(version)
            _copy_into(row, updated)
            return updated

    def set_latest(self, tenant_id: str, assistant_id: str, version: int) -> AssistantRecord | None:
        """A system assistant's latest is already the version its runs take: setting it to that
        version answers it, setting it to another deployed version raises `DeployedVersion`."""
        system = self.system().get(assistant_id)
        if system is not None:
            return self._system_latest(system, version)
        with self.db.session() as session:
            row = session.get(AssistantRow, (tenant_id, assistant_id), with_for_update=True)
            if row is None:
                return None
            chosen = session.get(AssistantVersionRow, (tenant_id, assistant_id, version))
            if chosen is None:
                raise UnknownVersion(f"assistant {assistant_id!r} has no version {version}")
            record = replace(_record(chosen, assistant_id), updated_at=utcnow())
            record = replace(record, created_at=row.created_at)
            _copy_into(row, record)
            return record

    def _system_latest(self, system: AssistantRecord, version: int) -> AssistantRecord:
        deployed = self.deployed(system.assistant_id) if self.deployed else []
        listed = {record.version: record for record in deployed or [system]}
        chosen = listed.get(version)
        if chosen is None:
            raise UnknownVersion(f"assistant {system.assistant_id!r} has no version {version}")
        if deployed and chosen.metadata.get("stable") is not True:
            raise DeployedVersion(
                f"version {version} of {system.assistant_id!r} is a deployed agent version, "
                "shared by every tenant: the operator makes it the stable version with "
                f"`steward rollout promote {system.assistant_id} {version}` (eval-gated)"
            )
        return chosen

    def delete(self, tenant_id: str, assistant_id: str) -> bool:
        if assistant_id in self.system():
            raise SystemAssistant(assistant_id)
        with self.db.session() as session:
            row = session.get(AssistantRow, (tenant_id, assistant_id))
            if row is None:
                return False
            session.execute(
                delete(AssistantVersionRow).where(
                    AssistantVersionRow.tenant_id == tenant_id,
                    AssistantVersionRow.assistant_id == assistant_id,
                )
            )
            session.delete(row)
            return True


def _row(tenant_id: str, record: AssistantRecord) -> AssistantRow:
    row = AssistantRow(tenant_id=tenant_id, id=record.assistant_id, created_at=record.created_at)
    _copy_into(row, record)
    return row


def _copy_into(row: AssistantRow, record: AssistantRecord) -> None:
    row.graph_id = record.graph_id
    row.name = record.name
    row.description = record.description
    row.version = record.version
    row.config = record.config
    row.context = record.context
    row.meta = record.metadata
    row.updated_at = record.updated_at


def _version_row(tenant_id: str, record: AssistantRecord) -> AssistantVersionRow:
    return AssistantVersionRow(
        tenant_id=tenant_id,
        assistant_id=record.assistant_id,
        version=record.version,
        graph_id=record.graph_id,
        name=record.name,
        description=record.description,
        config=record.config,
        context=record.context,
        meta=record.metadata,
        created_at=record.created_at,
    )
