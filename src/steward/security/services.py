"""The security layer built from settings: audit log, secret store, API keys, JWT verifier and
webhook hooks, wired so that every security event lands in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from steward import audit
from steward.audit.failures import AuthFailureAggregator
from steward.audit.log import AuditLog
from steward.audit.signing import CheckpointSigner
from steward.config import Settings
from steward.security.jwt_auth import JwtSettings, JwtVerifier
from steward.security.keys import KeyStore
from steward.security.redaction import install_log_redaction
from steward.security.secrets import Keyring, SecretStore
from steward.security.tenant_settings import TenantSettingsStore
from steward.security.webhooks import HookStore
from steward.store.database import Database
from steward.store.tenants import TenantDirectory

log = logging.getLogger("steward.security")


def _record(tenant_id: str, kind: str, data: dict[str, object]) -> None:
    audit.record(tenant_id, kind, dict(data))


@dataclass
class Security:
    audit: AuditLog
    keys: KeyStore
    secrets: SecretStore
    hooks: HookStore
    jwt: JwtVerifier | None
    webhook_tolerance_s: int
    tenant_settings: TenantSettingsStore
    tenants: TenantDirectory
    auth_failures: AuthFailureAggregator = field(
        default_factory=lambda: AuthFailureAggregator(audit.record_later)
    )
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    # The security layer's own thread: the engine's shutdown closes the loop's default pool
    # while these tasks may still be running, and the final checkpoint must still be signed.
    _executor: ThreadPoolExecutor | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, db: Database) -> Security:
        install_log_redaction()
        audit_log = AuditLog(
            db,
            CheckpointSigner(settings.resolved_audit_key_dir),
            checkpoint_every=settings.audit_checkpoint_every,
            checkpoint_interval_s=settings.audit_checkpoint_interval_s,
        )
        audit.install(audit_log)
        env_key = settings.secret_key.get_secret_value() if settings.secret_key else None
        secrets = SecretStore(
            db, Keyring.load(env_key, settings.resolved_secret_key_file), audit=_record
        )
        return cls(
            audit=audit_log,
            keys=KeyStore(db, audit=_record, cache_ttl_s=settings.key_cache_ttl_s),
            secrets=secrets,
            hooks=HookStore(db, secrets),
            jwt=_jwt_verifier(settings),
            webhook_tolerance_s=settings.webhook_tolerance_s,
            tenant_settings=TenantSettingsStore(db),
            tenants=TenantDirectory(db),
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="steward-security")
        self._tasks = [
            loop.create_task(self._checkpoint_forever()),
            loop.create_task(self._flush_failures_forever()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # a checkpoint in flight finishes first
            self._executor = None
        self.auth_failures.flush_all()  # the open windows: nothing counted is lost
        if audit.current() is self.audit:
            audit.install(None)  # writes the events still queued before the last checkpoints
        # Sign whatever is still unsigned, so a clean shutdown leaves no unsigned tail.
        try:
            for tenant_id in self.audit.tenants_with_unsigned_records():
                self.audit.checkpoint(tenant_id)
        except Exception:
            log.exception("could not sign the final audit checkpoints")

    async def flush_auth_failures(self) -> None:
        """Write the open failure windows and wait until they are in the log (before an export)."""
        self.auth_failures.flush_all()
        await asyncio.to_thread(audit.wait_written)

    async def _checkpoint_forever(self) -> None:
        interval = self.audit.checkpoint_interval_s
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(interval, 5.0))
            try:
                await loop.run_in_executor(self._executor, self.audit.checkpoint_pending)
            except Exception:  # a bad moment of the database must not end the loop
                log.exception("could not sign audit checkpoints")

    async def _flush_failures_forever(self) -> None:
        while True:
            await asyncio.sleep(min(self.auth_failures.window_s / 4, 5.0))
            self.auth_failures.flush_due()  # only queues: the audit writer does the I/O


def _jwt_verifier(settings: Settings) -> JwtVerifier | None:
    if settings.jwt_algorithm is None:
        return None
    return JwtVerifier(
        JwtSettings(
            algorithm=settings.jwt_algorithm,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            jwks_url=settings.jwt_jwks_url,
            public_key_file=settings.jwt_public_key_file,
            shared_secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            leeway_s=settings.jwt_leeway_s,
            tenant_claim=settings.jwt_tenant_claim,
            role_claim=settings.jwt_role_claim,
            default_role=settings.jwt_default_role,
        )
    )
