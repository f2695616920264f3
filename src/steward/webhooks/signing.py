"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

Secrets are `whsec_<base64 key>`; the receiver verifies with the same secret in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from steward.errors import ConfigError

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The raw HMAC key of a `whsec_…` secret."""
    encoded = secret.removeprefix(PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ConfigError("a webhook secret must be `whsec_` followed by base64") from exc
    if len(key) < 16:
        raise ConfigError("a webhook secret needs at least 16 random bytes (24 base64 chars)")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }
