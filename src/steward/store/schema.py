"""Steward's relational schema: one set of SQLAlchemy tables for SQLite and PostgreSQL.

Every row carries its tenant; every query in the store filters by it (DESIGN invariant 7).
Alembic migrations in `steward/store/migrations` create exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)  # public lookup part
    secret_hash: Mapped[str] = mapped_column(String(128))  # sha256 of the secret part
    role: Mapped[str] = mapped_column(String(32), default="admin")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    # Per-key rate limit overrides; None falls back to the global settings.
    rate_limit_per_minute: Mapped[float | None] = mapped_column(Float, default=None)
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer, default=None)


class Thread(Base):
    __tablename__ = "threads"

    # Thread ids may be chosen by the client, so each tenant has its own id space.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), default="idle")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_threads_tenant_created", "tenant_id", "created_at"),)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    thread_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    agent: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    stop_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    # Whether this run holds its thread: pending-to-start, running or paused for approval.
    # A run queued behind another (multitask_strategy="enqueue") is pending but not active.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    multitask_strategy: Mapped[str] = mapped_column(String(16), default="reject")
    user_id: Mapped[str | None] = mapped_column(String(200), default=None)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Where the run's result is POSTed when it ends (background runs); see steward.webhooks.
    webhook: Mapped[str | None] = mapped_column(String(2048), default=None)

    __table_args__ = (
        Index("ix_runs_tenant_created", "tenant_id", "created_at"),
        Index(
            "ix_runs_with_webhook",
            "status",
            sqlite_where=text("webhook IS NOT NULL"),
            postgresql_where=text("webhook IS NOT NULL"),
        ),
        # At most one active run per thread, enforced by the database so concurrent
        # submissions cannot both pass a check-then-insert.
        Index(
            "ux_runs_one_active_per_thread",
            "tenant_id",
            "thread_id",
            unique=True,
            sqlite_where=text("active = true"),
            postgresql_where=text("active = true"),
        ),
        Index("ix_runs_tenant_thread_created", "tenant_id", "thread_id", "created_at"),
    )


class Approval(Base):
    """A tool call waiting for (or decided by) a person; its run is paused while pending."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(96), primary_key=True)  # "{run_id}:{step}"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    thread_id: Mapped[str | None] = mapped_column(String(64), default=None)
    step: Mapped[int] = mapped_column(Integer)
    tool: Mapped[str] = mapped_column(String(200))
    call_id: Mapped[str] = mapped_column(String(200))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # why approval is needed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_arguments: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    stream_after: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_approvals_tenant_status", "tenant_id", "status"),)


class Span(Base):
    """A finished OpenTelemetry span, stored for the per-run trace API."""

    __tablename__ = "spans"

    span_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(16), default=None)
    tenant_id: Mapped[str | None] = mapped_column(String(64), default=None)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    start_ns: Mapped[int] = mapped_column(BigInteger)
    end_ns: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[str] = mapped_column(String(16))
    status_message: Mapped[str | None] = mapped_column(Text, default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    events: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        Index("ix_spans_tenant_run", "tenant_id", "run_id"),
        Index("ix_spans_tenant_start", "tenant_id", "start_ns"),  # the retention job's walk
    )


class IdempotencyRecord(Base):
    """One Idempotency-Key of one principal: its request fingerprint and stored response."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    principal: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="processing")  # or "done"
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (
        UniqueConstraint("tenant_id", "principal", "key", name="ux_idempotency_scope_key"),
    )


class OutboundWebhook(Base):
    """The outbound webhook of one finished run: pending until delivered or given up."""

    __tablename__ = "outbound_webhooks"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    message_id: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_outbound_webhooks_due", "state", "next_attempt_at"),)


class OutboundWebhookAttempt(Base):
    """One HTTP attempt of a webhook delivery, successful or not."""

    __tablename__ = "outbound_webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column()


class SpendCounter(Base):
    """A capped spend counter (embedded mode): reserved plus settled nano-USD in one window."""

    __tablename__ = "spend_counters"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    amount_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class SpendRecord(Base):
    """One priced model call through the gateway, agent or proxy: the durable spend ledger."""

    __tablename__ = "spend_records"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(64), default=None)
    user_id: Mapped[str | None] = mapped_column(String(200), default=None)
    agent: Mapped[str | None] = mapped_column(String(200), default=None)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    source: Mapped[str] = mapped_column(String(16))  # agent | proxy
    provider: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    cost_estimated: Mapped[bool] = mapped_column(default=False)
    price_version: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(32), default="ok")  # ok | error | cached
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_spend_records_tenant_created", "tenant_id", "created_at"),)


class SandboxRecord(Base):
    """A sandbox's durable metadata; its processes live in the Steward process named `owner`."""

    __tablename__ = "sandboxes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    backend: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32), default="starting")
    standby_mode: Mapped[str | None] = mapped_column(String(16), default=None)
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    env_keys: Mapped[dict[str, Any]] = mapped_column(default=dict)  # names only: may be secret
    volumes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idle_timeout_s: Mapped[float] = mapped_column(Float, default=15.0)
    timeout_s: Mapped[float | None] = mapped_column(Float, default=None)
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Unique while live (NULL once deleted): one unprivileged host uid per sandbox.
    host_uid: Mapped[int | None] = mapped_column(BigInteger, default=None, unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_sandboxes_tenant_created", "tenant_id", "created_at"),)


class Worker(Base):
    """One executor id's registration: which process holds it and when it last beat.

    Heartbeat times are the database's clock (seconds since the epoch), so hosts with
    skewed clocks agree on staleness.
    """

    __tablename__ = "workers"

    executor_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    incarnation: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    process_start: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="live")  # live | stopped | swept
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)
    beats: Mapped[int] = mapped_column(BigInteger, default=0)
    swept_by: Mapped[str | None] = mapped_column(String(200), default=None)


class SloAlertState(Base):
    """Whether an SLO burn-rate alert is firing; flipping `firing` is how one process (and only
    one) claims a firing's webhook (migration 0015)."""

    __tablename__ = "slo_alert_state"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent: Mapped[str] = mapped_column(String(200), primary_key=True)
    objective: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    firing: Mapped[bool] = mapped_column(Boolean)
    episode: Mapped[int] = mapped_column(Integer)
    fired_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    # A delivery in flight holds the alert for a lease; a lapsed lease (a crash) or a failed
    # attempt lets the next check deliver it again, under the same webhook id.
    delivery_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    delivery_error: Mapped[str | None] = mapped_column(Text, default=None)


class RetentionPolicyRow(Base):
    """How long a tenant's spans, captured message content and run payloads are kept (days)
    and how many at most; the row of tenant `*` applies to tenants without their own."""

    __tablename__ = "retention_policies"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    spans_days: Mapped[int | None] = mapped_column(Integer, default=None)
    spans_max: Mapped[int | None] = mapped_column(Integer, default=None)
    content_days: Mapped[int | None] = mapped_column(Integer, default=None)
    content_max: Mapped[int | None] = mapped_column(Integer, default=None)
    payloads_days: Mapped[int | None] = mapped_column(Integer, default=None)
    payloads_max: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
