"""Ed25519 keys that sign audit checkpoints, kept as files; each has a key id for rotation.

A key id is the first 16 hex digits of SHA-256 over the raw public key. `rotate` adds a key and
makes it current; older keys stay so the checkpoints they signed still verify.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

# Domain separation: a checkpoint signature can never be replayed as any other signed message.
SIGNING_CONTEXT = b"steward-audit-checkpoint:v1\n"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(*_RAW)).hexdigest()[:16]


def public_key_raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(*_RAW)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(public_key: Ed25519PublicKey, statement: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, SIGNING_CONTEXT + statement)
    except InvalidSignature:
        return False
    return True


class CheckpointSigner:
    """The key directory: `<key id>.pem` private keys, `<key id>.pub` raw public keys, `current`."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        current = key_dir / "current"
        if not current.exists():
            self.rotate()
        self.key_id = current.read_text().strip()
        pem = (key_dir / f"{self.key_id}.pem").read_bytes()
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{self.key_id}.pem is not an Ed25519 key")
        self._private = private

    def sign(self, statement: bytes) -> bytes:
        return self._private.sign(SIGNING_CONTEXT + statement)

    def rotate(self) -> str:
        """Create a new key and make it current; returns its key id."""
        self.key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        key_id = key_id_of(private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(self.key_dir / f"{key_id}.pem", pem)
        (self.key_dir / f"{key_id}.pub").write_bytes(private.public_key().public_bytes(*_RAW))
        tmp = self.key_dir / "current.tmp"
        tmp.write_text(key_id)
        tmp.replace(self.key_dir / "current")
        self.key_id = key_id
        self._private = private
        return key_id

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return load_public_keys(self.key_dir)


def load_public_keys(key_dir: Path) -> dict[str, Ed25519PublicKey]:
    """Every `<key id>.pub` in `key_dir`; a file whose content does not match its id is skipped."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(key_dir.glob("*.pub")):
        public = public_key_from_raw(path.read_bytes())
        if key_id_of(public) == path.stem:
            keys[path.stem] = public
    return keys


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
