"""The security layer built from settings: audit log, secret store, API keys, JWT verifier and
webhook hooks, wired so that every security event lands in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from steward import audit
from steward.audit.log import AuditLog
from steward.audit.signing import CheckpointSigner
from steward.config import Settings
from steward.security.jwt_auth import JwtSettings, JwtVerifier
from steward.security.keys import KeyStore
from steward.security.redaction import install_log_redaction
from steward.security.secrets import Keyring, SecretStore
from steward.security.webhooks import HookStore
from steward.store.database import Database

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
    _checkpointer: asyncio.Task[None] | None = field(default=None, repr=False)

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
        )

    def start(self) -> None:
        self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_forever())

    async def stop(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        if audit.current() is self.audit:
            audit.install(None)  # writes the events still queued before the last checkpoints
        # Sign whatever is still unsigned, so a clean shutdown leaves no unsigned tail. Inline:
        # by now the engine's shutdown may have closed the loop's default thread pool.
        try:
            for tenant_id in self.audit.tenants_with_unsigned_records():
                self.audit.checkpoint(tenant_id)
        except Exception:
            log.exception("could not sign the final audit checkpoints")

    async def _checkpoint_forever(self) -> None:
        interval = self.audit.checkpoint_interval_s
        while True:
            await asyncio.sleep(min(interval, 5.0))
            try:
                await asyncio.to_thread(self.audit.checkpoint_pending)
            except Exception:  # a bad moment of the database must not end the loop
                log.exception("could not sign audit checkpoints")


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
