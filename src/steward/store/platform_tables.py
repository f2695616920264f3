"""Tables of LangGraph Platform's resources: assistants and their versions, store items, crons.

Kept beside `schema.py` on the same metadata; migration 0012 creates them. Every row carries its
tenant and every query filters by it (DESIGN invariant 7).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from steward.store.schema import Base, utcnow


class AssistantRow(Base):
    """An assistant: a graph (agent) with a configuration; `version` is the one in use."""

    __tablename__ = "assistants"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    graph_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_assistants_tenant_graph", "tenant_id", "graph_id"),)


class AssistantVersionRow(Base):
    """One immutable version of an assistant; a PATCH adds one, never changes one."""

    __tablename__ = "assistant_versions"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    assistant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    graph_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoreItemRow(Base):
    """A document of the long-term store, under a namespace path (labels joined by '.')."""

    __tablename__ = "store_items"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(1000), primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ttl_minutes: Mapped[float | None] = mapped_column(Float, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


class CronRow(Base):
    """A schedule that starts a normal run at each tick; `next_run_at` is also the claim."""

    __tablename__ = "crons"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    assistant_id: Mapped[str] = mapped_column(String(200))
    thread_id: Mapped[str | None] = mapped_column(String(64), default=None)
    schedule: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    user_id: Mapped[str | None] = mapped_column(String(200), default=None)
    on_run_completed: Mapped[str | None] = mapped_column(String(16), default=None)
    # The tick to fire next; None once the schedule is past its end_time.
    next_run_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # A tick claimed by a scheduler that has not yet recorded its run, and until when the
    # claim holds: a scheduler that died in between leaves it for another to finish.
    claimed_tick: Mapped[datetime | None] = mapped_column(default=None)
    claim_until: Mapped[datetime | None] = mapped_column(default=None)
    last_run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
