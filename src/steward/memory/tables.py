"""Tables of the memory layers in the main database: the outbox that carries durable writes to
the semantic index, and which durable items belong to which end user (for erasure)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from steward.store.schema import Base, utcnow

# Kinds of outbox entries; each is applied idempotently, so one applied twice does no harm.
UPSERT = "upsert"
DELETE = "delete"
DELETE_NAMESPACE = "delete_namespace"
DELETE_USER = "delete_user"


class MemoryOutboxRow(Base):
    """A change of the durable record still to reach the semantic index (deleted once it has)."""

    __tablename__ = "memory_outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(32))
    namespace: Mapped[str] = mapped_column(String(1000), default="")
    key: Mapped[str] = mapped_column(String(1000), default="")
    end_user: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemorySubjectRow(Base):
    """A durable item written for an end user: erasing the user deletes it."""

    __tablename__ = "memory_subjects"
    __table_args__ = (Index("ix_memory_subjects_item", "tenant_id", "namespace", "key"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    end_user: Mapped[str] = mapped_column(String(200), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(1000), primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
