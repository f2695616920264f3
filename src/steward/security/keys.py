"""API keys: created with a random secret shown once, stored as a SHA-256 hash, tied to a tenant.

A key reads `stw_<prefix>_<secret>`; the prefix finds the row, the secret is compared in
constant time. Secrets are 256-bit random, so a fast hash is enough (no password stretching).

Authenticated keys are cached for `cache_ttl_s` (a database read per request was the largest
cost on the proxy's hot path). A revocation through this store drops the key from this
process's cache at once; another process (a CLI, another replica) stops accepting it within the
TTL. Only successes are cached, so unknown keys cannot fill the cache.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from steward.security.roles import ROLES
from steward.store.database import Database
from steward.store.schema import ApiKey, utcnow
from steward.store.tenants import ensure_tenant

DEFAULT_TENANT = "default"
_KEY_SHAPE = re.compile(r"^stw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PREFIX_SHAPE = re.compile(r"^stw_([0-9a-f]{12})_")
AuditHook = Callable[[str, str, dict[str, object]], object]
DEFAULT_CACHE_TTL_S = 5.0
_CACHE_ENTRIES = 10_000


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


def _digest(presented: str) -> bytes:
    return hashlib.sha256(presented.encode()).digest()


class KeyStore:
    def __init__(
        self,
        db: Database,
        audit: AuditHook | None = None,
        *,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
    ) -> None:
        self.db = db
        self._audit = audit
        self.cache_ttl_s = cache_ttl_s
        # SHA-256 of the whole presented key -> (good until, monotonic; principal). Keyed by a
        # digest so the cache never holds a secret, and a lookup leaks nothing about one.
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()  # revocations run in worker threads
        # Bumped by every revocation: a lookup that raced one is not cached (it may have read
        # the row before the revocation committed).
        self._generation = 0

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
            ensure_tenant(session, tenant_id)
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
        self._forget(key_id)
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

    def cached(self, presented: str) -> Principal | None:
        """The principal this process authenticated the key as within the TTL, without touching
        the database; None when it must be looked up (`authenticate`)."""
        entry = self._cache.get(_digest(presented))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def authenticate(self, presented: str) -> Principal | None:
        """The principal for a presented key, or None for any unknown, revoked or malformed key."""
        principal = self.cached(presented)
        if principal is not None:
            return principal
        generation = self._generation
        principal = self._lookup(presented)
        if principal is not None and self.cache_ttl_s > 0:
            self._remember(presented, principal, generation)
        return principal

    def _remember(self, presented: str, principal: Principal, generation: int) -> None:
        with self._cache_lock:
            if generation != self._generation:
                return
            if len(self._cache) >= _CACHE_ENTRIES:
                now = time.monotonic()
                self._cache = {k: v for k, v in self._cache.items() if v[0] >= now}
                while len(self._cache) >= _CACHE_ENTRIES:  # still full: drop the oldest
                    del self._cache[next(iter(self._cache))]
            self._cache[_digest(presented)] = (time.monotonic() + self.cache_ttl_s, principal)

    def _forget(self, key_id: str) -> None:
        with self._cache_lock:
            self._generation += 1
            self._cache = {k: v for k, v in self._cache.items() if v[1].key_id != key_id}

    def _lookup(self, presented: str) -> Principal | None:
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
