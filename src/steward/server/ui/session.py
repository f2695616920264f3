"""The dashboard's login session: a signed cookie naming the API key that logged in, and the
CSRF tokens derived from it.

The cookie holds no secret: `{key id, tenant, expiry, nonce}` and an HMAC-SHA256 over them.
Every request re-reads the key, so revoking it (or changing its role) ends or changes the
session at once. A mutating form carries `csrf`, an HMAC of the session's nonce, checked in
constant time; the cookie is also `SameSite=Strict` and `HttpOnly`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from steward.config import Settings
from steward.security.keys import Principal
from steward.store.database import Database
from steward.store.schema import ApiKey

SESSION_COOKIE = "steward_session"
LOGIN_COOKIE = "steward_login"  # a nonce that ties the login form's CSRF token to the browser


@dataclass(frozen=True)
class Session:
    key_id: str
    tenant_id: str
    expires_at: float
    nonce: str


class SessionSigner:
    def __init__(self, secret: bytes, ttl_s: float) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionSigner:
        if settings.ui_session_secret is not None:
            secret = settings.ui_session_secret.get_secret_value().encode()
        else:
            secret = _home_secret(settings.home / "ui_session.key")
        return cls(secret, settings.ui_session_ttl_s)

    def issue(self, principal: Principal) -> tuple[str, Session]:
        session = Session(
            principal.key_id,
            principal.tenant_id,
            time.time() + self.ttl_s,
            secrets.token_urlsafe(16),
        )
        body = json.dumps(
            [session.key_id, session.tenant_id, session.expires_at, session.nonce]
        ).encode()
        encoded = _b64(body)
        return f"{encoded}.{self._sign(b'session.' + encoded.encode())}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None if it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(b"session." + encoded.encode())):
            return None
        try:
            key_id, tenant_id, expires_at, nonce = json.loads(_unb64(encoded))
        except (ValueError, TypeError):
            return None
        if not isinstance(expires_at, int | float) or expires_at < time.time():
            return None
        return Session(str(key_id), str(tenant_id), float(expires_at), str(nonce))

    def csrf(self, nonce: str) -> str:
        return self._sign(b"csrf." + nonce.encode())

    def csrf_ok(self, nonce: str | None, presented: str | None) -> bool:
        if not nonce or not presented:
            return False
        return hmac.compare_digest(self.csrf(nonce), presented)

    def _sign(self, message: bytes) -> str:
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())


def principal_of(db: Database, session: Session) -> Principal | None:
    """The session's key as it is now: None once revoked, deleted or moved to another tenant."""
    with db.session() as db_session:
        key = db_session.scalar(select(ApiKey).where(ApiKey.id == session.key_id))
        if key is None or key.revoked_at is not None or key.tenant_id != session.tenant_id:
            return None
        return Principal(key.tenant_id, key.id, key.role)


def _home_secret(path: Path) -> bytes:
    """A random key kept beside the embedded data; the first process to start writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process may be between creating the file and writing it.
        for _ in range(100):
            existing = path.read_bytes().strip()
            if existing:
                return existing
            time.sleep(0.01)
        raise RuntimeError(
            f"{path} stays empty: delete it or set STEWARD_UI_SESSION_SECRET"
        ) from None
    secret = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
