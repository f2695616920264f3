"""API keys: created with a random secret shown once, stored as a SHA-256 hash, tied to a tenant.

A key reads `stw_<prefix>_<secret>`; the prefix finds the row, the secret is compared in
constant time. Secrets are 256-bit random, so a fast hash is enough (no password stretching).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from steward.security.roles import ROLES
from steward.store.database import Database
from steward.store.schema import ApiKey, Tenant, utcnow

DEFAULT_TENANT = "default"
_KEY_SHAPE = re.compile(r"^stw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PREFIX_SHAPE = re.compile(r"^stw_([0-9a-f]{12})_")
AuditHook = Callable[[str, str, dict[str, object]], object]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant every query is scoped to, the key's role, the end user if any."""

    tenant_id: str
    key_id: str
    role: str
    user_id: str | None = None
    rate_limit_per_minute: float | None = None  # this key's own limit, if it has one
    rate_limit_burst: int | None = None


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    tenant_id: str
    role: str
    secret: str  # shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, db: Database, audit: AuditHook | None = None) -> None:
        self.db = db
        self._audit = audit

    def create(
        self,
        name: str,
        *,
        tenant_id: str = DEFAULT_TENANT,
        role: str = "admin",
        rate_limit_per_minute: float | None = None,
        rate_limit_burst: int | None = None,
    ) -> CreatedKey:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            name=name,
            prefix=prefix,
            secret_hash=_hash(secret),
            role=role,
            rate_limit_per_minute=rate_limit_per_minute,
            rate_limit_burst=rate_limit_burst,
        )
        with self.db.session() as session:
            if session.get(Tenant, tenant_id) is None:
                session.add(Tenant(id=tenant_id, name=tenant_id))
                session.flush()
            session.add(key)
        self._record(tenant_id, "key.created", {"key_id": key.id, "name": name, "role": role})
        return CreatedKey(key.id, name, tenant_id, role, f"stw_{prefix}_{secret}")

    def list(self, tenant_id: str | None = None) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        with self.db.session() as session:
            return list(session.scalars(query))

    def revoke(self, key_id: str, tenant_id: str | None = None) -> bool:
        query = select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        with self.db.session() as session:
            key = session.scalar(query)
            if key is None:
                return False
            key.revoked_at = utcnow()
            tenant = key.tenant_id
        self._record(tenant, "key.revoked", {"key_id": key_id})
        return True

    def tenant_of_presented(self, presented: str) -> str | None:
        """The tenant whose key prefix a (failed) key carries, to file the failure under."""
        match = _PREFIX_SHAPE.match(presented)
        if match is None:
            return None
        with self.db.session() as session:
            return session.scalar(select(ApiKey.tenant_id).where(ApiKey.prefix == match[1]))

    def _record(self, tenant_id: str, kind: str, data: dict[str, object]) -> None:
        if self._audit is not None:
            self._audit(tenant_id, kind, data)

    def authenticate(self, presented: str) -> Principal | None:
        """The principal for a presented key, or None for any unknown, revoked or malformed key."""
        match = _KEY_SHAPE.match(presented)
        if match is None:
            return None
        prefix, secret = match.groups()
        with self.db.session() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if key is None:
                hmac.compare_digest(_hash(secret), _hash(""))  # same work for unknown prefixes
                return None
            if not hmac.compare_digest(key.secret_hash, _hash(secret)):
                return None
            if key.revoked_at is not None:
                return None
            return Principal(
                key.tenant_id,
                key.id,
                key.role,
                rate_limit_per_minute=key.rate_limit_per_minute,
                rate_limit_burst=key.rate_limit_burst,
            )
