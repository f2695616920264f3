"""Tables of the security layer: the audit log and its checkpoints, secrets, webhook hooks.

Kept beside `schema.py` on the same metadata; migration 0004 creates them and the triggers
that make the audit tables append-only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from steward.store.schema import Base, utcnow


class AuditRecord(Base):
    """One event of a tenant's audit log; `entry` holds the exact canonical JSON that was hashed."""

    __tablename__ = "audit_records"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64))
    entry: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditCheckpoint(Base):
    """A signed tree head: the Merkle root over the first `tree_size` records of a tenant."""

    __tablename__ = "audit_checkpoints"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    statement: Mapped[str] = mapped_column(Text)  # canonical JSON that was signed
    signature: Mapped[str] = mapped_column(Text)  # base64 Ed25519
    # The compact range (RFC 6962 complete-subtree roots, hex, comma-separated) of the first
    # `tree_size` records: the next checkpoint extends it instead of rereading every record.
    frontier: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoredSecret(Base):
    """A tenant's named secret, AES-256-GCM encrypted under the key `key_id`."""

    __tablename__ = "secrets"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(32))  # base64, 12 bytes
    ciphertext: Mapped[str] = mapped_column(Text)  # base64, includes the GCM tag
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookHook(Base):
    """An agent's inbound webhook: `POST /hooks/{id}` signed with one of its secrets."""

    __tablename__ = "webhook_hooks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    agent: Mapped[str] = mapped_column(String(200))
    scheme: Mapped[str] = mapped_column(String(16))  # standard | stripe
    secret_names: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tolerance_s: Mapped[int] = mapped_column(default=300)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(Base):
    """A delivery already accepted; its id is refused from then on (replay protection)."""

    __tablename__ = "webhook_deliveries"

    hook_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantSettings(Base):
    """Per-tenant settings an admin may change over the API (every change is audited)."""

    __tablename__ = "tenant_settings"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
