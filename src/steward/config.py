"""Steward's settings: `steward.toml` in the working directory, overridden by `STEWARD_*` variables.

Every option is documented here; `steward dev` and the tests build one `Settings` and pass it down.
"""

from __future__ import annotations

import json
import tomllib
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from steward.models.settings import GatewaySettings
from steward.tools.settings import ToolSettings


def _comma_or_json_list(value: Any) -> Any:
    """`a,b` or `["a", "b"]`: what a list looks like in an environment variable."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        return json.loads(value)  # a malformed list is an error, never one odd-looking item
    return [part.strip() for part in value.split(",") if part.strip()]


# Every list-valued setting is one of these: pydantic-settings would otherwise JSON-decode the
# environment value and refuse `a.py,b.py` before any validator sees it.
StringList = Annotated[list[str], NoDecode, BeforeValidator(_comma_or_json_list)]


class Settings(BaseSettings):
    """All of Steward's configuration. Environment variables win over `steward.toml`."""

    model_config = SettingsConfigDict(
        env_prefix="STEWARD_", toml_file="steward.toml", extra="ignore", frozen=True
    )

    home: Path = Field(
        default=Path(".steward"),
        description="Directory for embedded data: the SQLite databases and local files.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the durable store; default: SQLite under `home`.",
    )
    apps: StringList = Field(
        default_factory=list,
        description="App targets to serve, `path/to/file.py` or `module:attribute`; in the "
        "environment comma-separated (`a.py,b.py`) or a JSON list.",
    )
    model: str = Field(
        default="local",
        description="Default model for agents that name none, e.g. `openai:gpt-4.1-mini`, "
        "`anthropic:claude-sonnet-4-5`, `openai-compatible:http://host:8000/v1#model`, `local`.",
    )
    executor_id: str | None = Field(
        default=None,
        description="Stable id of this worker; runs pending under it are recovered at start. "
        "Default: `{hostname}-{worker_slot}`.",
    )
    worker_slot: int | None = Field(
        default=None,
        ge=0,
        description="This worker's slot on its host, part of the default executor id; "
        "default: the lowest slot no live worker on this host holds.",
    )
    worker_concurrency: int = Field(
        default=64, ge=1, description="Most runs one worker executes at once."
    )
    heartbeat_interval_s: float = Field(
        default=2.0, gt=0, description="How often a worker records that it is alive."
    )
    worker_stale_after_s: float = Field(
        default=15.0,
        gt=0,
        description="A worker silent this long is presumed dead and its runs are recovered by "
        "another; a worker that could not beat for half of it stops running steps.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, description="Largest accepted request body (413 above it)."
    )
    key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a process trusts an API key it authenticated before reading it "
        "again (0: every request). Revoking through this server takes effect at once; revoking "
        "from another process (the CLI, another replica) within this time.",
    )
    rate_limit_per_minute: float = Field(
        default=1200,
        gt=0,
        description="Requests per minute per API key (unless the key has its own limit).",
    )
    rate_limit_burst: int | None = Field(
        default=None, gt=0, description="Bucket size per API key; default: one minute's worth."
    )
    user_rate_limit_per_minute: float | None = Field(
        default=None,
        gt=0,
        description="Requests per minute per end user (`user` field or `x-steward-user` header) "
        "of a tenant; default: `rate_limit_per_minute`.",
    )
    user_rate_limit_burst: int | None = Field(
        default=None, gt=0, description="Bucket size per end user; default: one minute's worth."
    )
    rate_limit_fail_open: bool = Field(
        default=True,
        description="When Redis is unreachable: allow requests (true) or refuse them with 503 "
        "(false).",
    )
    redis_url: str | None = Field(
        default=None,
        description="`redis://…` for scale-out hot state (stream fan-out, rate-limit buckets, "
        "session values, spend counters); default: in-process memory. Never the system of "
        "record.",
    )
    redis_prefix: str = Field(
        default="steward:", description="Prefix of every Redis key, so deployments can share one."
    )
    idempotency_ttl_s: int = Field(
        default=86_400,
        gt=0,
        description="How long an Idempotency-Key and its stored response are kept (24 h).",
    )
    idempotency_lease_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a key stays locked by a request that never finished (a crash).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="`whsec_…` secret that signs outgoing webhooks (Standard Webhooks).",
    )
    webhook_tenant_secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Per-tenant `whsec_…` secrets (JSON object tenant -> secret); they win over "
        "`webhook_secret`.",
    )
    webhook_allowed_networks: StringList = Field(
        default_factory=list,
        description="CIDRs webhook targets may resolve to even though they are private, "
        "loopback or link-local (e.g. `127.0.0.0/8`); everything non-public is refused otherwise.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Delivery attempts per webhook before it is marked failed."
    )
    webhook_backoff_base_s: float = Field(
        default=2.0, gt=0, description="First retry delay bound; doubles per attempt (full jitter)."
    )
    webhook_backoff_cap_s: float = Field(
        default=600.0, gt=0, description="Largest retry delay bound."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Per-attempt HTTP timeout.")
    capture_message_content: bool = Field(
        default=False,
        description="Record prompts and completions on spans (gen_ai.input/output.messages).",
    )
    trace_flush_interval_ms: int = Field(
        default=200, description="How often finished spans are written to the trace store."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="A bearer token that may read `/metrics` (and nothing else), for a "
        "Prometheus scrape; admin API keys may always read it.",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="`steward worker` serves its own `/metrics` on this port (needs "
        "`metrics_token`); unset: not served.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="Address the worker's `/metrics` listens on."
    )
    ui_session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs dashboard session cookies; the same on every API server. "
        "Default: a random key kept in `home/ui_session.key`.",
    )
    ui_session_ttl_s: float = Field(
        default=8 * 3600, gt=0, description="How long a dashboard login lasts."
    )
    queue_poll_interval_s: float = Field(
        default=0.05, description="How often a separate `steward worker` looks for queued runs."
    )
    cron_poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="The longest a process that executes runs goes without looking for crons "
        "that another process created or changed (its own are seen at once, and it wakes for "
        "each known tick on time).",
    )
    gateway: GatewaySettings = Field(
        default_factory=GatewaySettings,
        description="The model gateway: deployments, fallbacks, spend caps, retries, breakers, "
        "timeouts and the response cache (see steward.models.settings).",
    )
    tool_threads: int = Field(
        default=16,
        ge=1,
        description="Threads that run plain `def` tools (async tools run on the event loop); "
        "a blocking tool holds one of them, never the loop.",
    )
    tools: dict[str, ToolSettings] = Field(
        default_factory=dict,
        description="Per tool name, overrides of its declared `timeout_s`, `retries`, "
        "`retry_backoff_s`, `breaker_failures` and `breaker_cooloff_s` "
        "(`[steward.tools.lookup_order]` in steward.toml, or a JSON object in `STEWARD_TOOLS`).",
    )

    sandbox_backend: str | None = Field(
        default=None,
        description="Sandbox backend: `bwrap`, `gvisor` or `process`; default: the best available.",
    )
    sandbox_allow_unisolated: bool = Field(
        default=False,
        description="Allow the `process` sandbox backend, which isolates nothing (development).",
    )
    # -- security (identities, secrets, audit, transport) -----------------------------------
    secret_key: SecretStr | None = Field(
        default=None,
        description="AES-256 keys of the secret store, `id:base64[,id:base64…]`; the last "
        "encrypts. Unset: keys are read from `secret_key_file`.",
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="Key file of the secret store (`id base64` per line, the last encrypts); "
        "default `home/secret.key`, created with one key if missing.",
    )
    audit_key_dir: Path | None = Field(
        default=None,
        description="Directory of the Ed25519 keys that sign audit checkpoints; "
        "default `home/audit-keys`.",
    )
    audit_checkpoint_every: int = Field(
        default=100, ge=1, description="Sign a checkpoint after this many events per tenant."
    )
    audit_checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="…or when unsigned events are older than this."
    )
    jwt_algorithm: str | None = Field(
        default=None,
        description="Enables JWT bearer tokens, pinned to this one algorithm (RS256, ES256, "
        "EdDSA, HS256, …). Unset: only API keys authenticate.",
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of JWTs.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of JWTs.")
    jwt_jwks_url: str | None = Field(default=None, description="JWKS URL of the JWT issuer.")
    jwt_public_key_file: Path | None = Field(
        default=None, description="Static PEM public key for asymmetric JWTs (instead of JWKS)."
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="Shared secret for HS256/384/512 JWTs (at least 32 bytes)."
    )
    jwt_leeway_s: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed on `exp` and `nbf`."
    )
    jwt_tenant_claim: str = Field(default="tenant", description="JWT claim naming the tenant.")
    jwt_role_claim: str = Field(default="role", description="JWT claim naming the role.")
    jwt_default_role: str = Field(default="runner", description="Role of a JWT that names none.")
    webhook_tolerance_s: int = Field(
        default=300, ge=1, description="Largest clock difference accepted on signed webhooks."
    )
    tls_certfile: Path | None = Field(
        default=None, description="PEM certificate (chain): serve HTTPS, TLS 1.2 or newer."
    )
    tls_keyfile: Path | None = Field(
        default=None, description="PEM private key of the certificate."
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Proxies trusted for X-Forwarded-For/-Proto (comma-separated IPs or CIDRs, "
        "`*` for any); unset trusts none.",
    )
    sandbox_pool_size: int = Field(
        default=2,
        ge=0,
        le=64,
        description="The most launched bwrap sandboxes kept ready for fast creates; the pool "
        "sizes itself from recent demand up to this (0 disables the pool).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _StewardTomlSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'steward.db').resolve()}"

    @property
    def resolved_secret_key_file(self) -> Path:
        return self.secret_key_file or self.home / "secret.key"

    @property
    def resolved_audit_key_dir(self) -> Path:
        return self.audit_key_dir or self.home / "audit-keys"

    @property
    def durable_database_url(self) -> str:
        """Where the durable core keeps its journal: beside Steward's own tables."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'durable.db').resolve()}"


class _StewardTomlSource(TomlConfigSettingsSource):
    """Reads the `[steward]` table of `steward.toml` (or the top level if there is none)."""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        section = data.get("steward", data)
        return section if isinstance(section, dict) else {}
