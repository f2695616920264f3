"""The secret store: named per-tenant secrets, AES-256-GCM encrypted at rest, decrypted only
when an agent or tool asks for one by name (`ctx.secret("name")`), each access audited.

Keys come from `STEWARD_SECRET_KEY` (`id:base64[,id:base64…]`) or a key file (one `id base64`
per line); the last key encrypts, all decrypt. `rotate` re-encrypts every secret under it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.errors import ConfigError, UserError
from steward.security.redaction import MIN_SECRET_LENGTH, REDACTOR
from steward.store.database import Database
from steward.store.schema import utcnow
from steward.store.security_tables import StoredSecret
from steward.store.tenants import ensure_tenant

NAME_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
RESERVED_PREFIX = "steward."  # Steward's own secrets (webhook signing keys); agents cannot read
_KEY_ID_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AuditHook = Callable[[str, str, dict[str, object]], object]


class SecretNotFound(UserError):
    """No secret of that name in the tenant (or it is reserved)."""


@dataclass(frozen=True)
class SecretInfo:
    name: str
    key_id: str
    updated_at: str


class Secret:
    """A secret handed to agent code: printing, logging or JSON-encoding it shows no plaintext."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        """The plaintext, for the moment of use (a header, a connection string)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, '********')"

    __str__ = __repr__


class Keyring:
    """AES-256 keys by id; the last one encrypts."""

    def __init__(self, keys: list[tuple[str, bytes]], *, key_file: Path | None = None) -> None:
        if not keys:
            raise ConfigError("the secret keyring is empty")
        for key_id, key in keys:
            if len(key) != 32 or not _KEY_ID_SHAPE.match(key_id):
                raise ConfigError(f"secret key {key_id!r} must be 32 bytes with a plain id")
        self.keys = dict(keys)
        self.current_id = keys[-1][0]
        self.key_file = key_file

    @classmethod
    def load(cls, env_value: str | None, key_file: Path) -> Keyring:
        """From the environment if set, else the key file (created with one key if missing)."""
        if env_value:
            return cls([_parse_key(part.strip()) for part in env_value.split(",") if part.strip()])
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(_new_key_line())
        lines = [line.split() for line in key_file.read_text().splitlines() if line.strip()]
        return cls([_parse_key(":".join(parts)) for parts in lines], key_file=key_file)

    def add_key(self) -> str:
        """Append a fresh key to the key file and make it current (rotation's first half)."""
        if self.key_file is None:
            raise ConfigError(
                "keys come from STEWARD_SECRET_KEY: append a new `id:base64` key there, then rotate"
            )
        line = _new_key_line()
        with self.key_file.open("a") as handle:
            handle.write(line)
        key_id, key = _parse_key(line.strip().replace(" ", ":"))
        self.keys[key_id] = key
        self.current_id = key_id
        return key_id


def _new_key_line() -> str:
    key = AESGCM.generate_key(bit_length=256)
    return f"k{random.token_hex(4)} {base64.b64encode(key).decode()}\n"


def _parse_key(text: str) -> tuple[str, bytes]:
    key_id, sep, encoded = text.rpartition(":")
    if not sep:
        encoded = text
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ConfigError("a secret key must be base64 of 32 random bytes") from exc
    return (key_id or "k" + hashlib.sha256(key).hexdigest()[:8]), key


def _aad(tenant_id: str, name: str, key_id: str) -> bytes:
    # Binding tenant and name means a ciphertext copied to another row never decrypts.
    return f"steward-secret:v1|{tenant_id}|{name}|{key_id}".encode()


class SecretStore:
    def __init__(self, db: Database, keyring: Keyring, audit: AuditHook | None = None) -> None:
        self.db = db
        self.keyring = keyring
        self._audit = audit

    def set(self, tenant_id: str, name: str, value: str) -> None:
        with self.db.session() as session:
            key_id = self.store_in(session, tenant_id, name, value)
        self.record_set(tenant_id, name, key_id)

    def store_in(self, session: Session, tenant_id: str, name: str, value: str) -> str:
        """Encrypt and write the secret inside the caller's transaction; returns the key id.
        The caller records it with `record_set` once the transaction has committed."""
        if not NAME_SHAPE.match(name):
            raise UserError("secret names are 1-200 of A-Z a-z 0-9 _ . - (no leading dot)")
        if len(value) < MIN_SECRET_LENGTH:
            raise UserError(f"a secret must be at least {MIN_SECRET_LENGTH} characters")
        key_id = self.keyring.current_id
        nonce, sealed = self._seal(tenant_id, name, key_id, value)
        ensure_tenant(session, tenant_id)
        row = session.get(StoredSecret, (tenant_id, name))
        if row is None:
            row = StoredSecret(tenant_id=tenant_id, name=name)
            session.add(row)
        row.key_id, row.nonce, row.ciphertext, row.updated_at = key_id, nonce, sealed, utcnow()
        return key_id

    def record_set(self, tenant_id: str, name: str, key_id: str) -> None:
        self._record(tenant_id, "secret.set", {"name": name, "key_id": key_id})

    def reveal(
        self, tenant_id: str, name: str, *, purpose: dict[str, object], audited: bool = True
    ) -> str:
        """Decrypt one secret for immediate use; registers it for redaction, audits the access."""
        with self.db.session() as session:
            row = session.get(StoredSecret, (tenant_id, name))
        if row is None:
            self._record(tenant_id, "secret.denied", {"name": name, **purpose})
            raise SecretNotFound(f"no secret named {name!r}")
        value = self._open(row)
        REDACTOR.register(name, value)
        if audited:
            self._record(tenant_id, "secret.accessed", {"name": name, **purpose})
        return value

    def secret_for_agent(self, tenant_id: str, name: str, *, purpose: dict[str, object]) -> Secret:
        if name.startswith(RESERVED_PREFIX):
            self._record(tenant_id, "secret.denied", {"name": name, **purpose})
            raise SecretNotFound(f"no secret named {name!r}")
        return Secret(name, self.reveal(tenant_id, name, purpose=purpose))

    def list(self, tenant_id: str) -> list[SecretInfo]:
        with self.db.session() as session:
            rows = session.scalars(
                select(StoredSecret)
                .where(StoredSecret.tenant_id == tenant_id)
                .order_by(StoredSecret.name)
            ).all()
            return [SecretInfo(r.name, r.key_id, f"{r.updated_at:%Y-%m-%d %H:%M:%S}") for r in rows]

    def rotate(self) -> int:
        """Re-encrypt every secret not under the current key; returns how many changed."""
        changed = 0
        target = self.keyring.current_id
        with self.db.session() as session:
            rows = session.scalars(select(StoredSecret).where(StoredSecret.key_id != target)).all()
            tenants = set()
            for row in rows:
                value = self._open(row)
                row.nonce, row.ciphertext = self._seal(row.tenant_id, row.name, target, value)
                row.key_id = target
                tenants.add(row.tenant_id)
                changed += 1
        for tenant_id in sorted(tenants):
            self._record(tenant_id, "secret.rotated", {"key_id": target})
        return changed

    def _seal(self, tenant_id: str, name: str, key_id: str, value: str) -> tuple[str, str]:
        nonce = os.urandom(12)
        aead = AESGCM(self.keyring.keys[key_id])
        sealed = aead.encrypt(nonce, value.encode("utf-8"), _aad(tenant_id, name, key_id))
        return base64.b64encode(nonce).decode(), base64.b64encode(sealed).decode()

    def _open(self, row: StoredSecret) -> str:
        key = self.keyring.keys.get(row.key_id)
        if key is None:
            raise ConfigError(f"secret {row.name!r} is encrypted under unknown key {row.key_id!r}")
        try:
            plain = AESGCM(key).decrypt(
                base64.b64decode(row.nonce),
                base64.b64decode(row.ciphertext),
                _aad(row.tenant_id, row.name, row.key_id),
            )
        except InvalidTag as exc:
            raise ConfigError(f"secret {row.name!r} fails authentication (tampered?)") from exc
        return plain.decode("utf-8")

    def _record(self, tenant_id: str, kind: str, data: dict[str, object]) -> None:
        if self._audit is not None:
            self._audit(tenant_id, kind, data)
