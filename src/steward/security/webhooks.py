"""Signed webhook ingress: Standard Webhooks and Stripe-style signatures, timestamp tolerance,
and the hooks themselves (per-agent, per-tenant, secrets kept in the secret store).

Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` (several,
space-separated, for rotation) over `id.timestamp.body`, secret `whsec_<base64>`.
Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=…]` over `ts.body`, the secret string as the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from steward.security.secrets import SecretStore
from steward.store.database import Database
from steward.store.schema import utcnow
from steward.store.security_tables import WebhookDelivery, WebhookHook

SCHEMES = ("standard", "stripe")
NO_MATCH = "no signature matches this hook's secrets"
MAX_SECRETS = 2  # the newest and the one it replaced, while senders switch over


class WebhookRejected(Exception):
    """Why a delivery was refused; `reason` is a stable problem kind."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedDelivery:
    delivery_id: str
    timestamp: int


def new_secret() -> str:
    return "whsec_" + base64.b64encode(random.token_bytes(32)).decode()


def _timestamp(raw: str | None, tolerance_s: int, now: float) -> int:
    if raw is None or not raw.isdigit() or len(raw) > 12:
        raise WebhookRejected("webhook-malformed", "the signature timestamp is missing or invalid")
    stamp = int(raw)
    if abs(now - stamp) > tolerance_s:
        raise WebhookRejected(
            "webhook-stale", f"the timestamp is more than {tolerance_s}s from the server's clock"
        )
    return stamp


def verify_standard(
    headers: Mapping[str, str], body: bytes, secrets: list[str], tolerance_s: int, now: float
) -> VerifiedDelivery:
    delivery_id = headers.get("webhook-id")
    signatures = headers.get("webhook-signature")
    if not delivery_id or not signatures or len(delivery_id) > 200:
        raise WebhookRejected(
            "webhook-malformed", "send webhook-id, webhook-timestamp and webhook-signature"
        )
    stamp = _timestamp(headers.get("webhook-timestamp"), tolerance_s, now)
    signed = f"{delivery_id}.{stamp}.".encode() + body
    expected = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected.append(base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()))
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue
        if any(hmac.compare_digest(value.encode(), digest) for digest in expected):
            return VerifiedDelivery(delivery_id, stamp)
    raise WebhookRejected("webhook-signature-invalid", NO_MATCH)


def verify_stripe(
    headers: Mapping[str, str], body: bytes, secrets: list[str], tolerance_s: int, now: float
) -> VerifiedDelivery:
    header = headers.get("stripe-signature")
    if not header:
        raise WebhookRejected("webhook-malformed", "send a Stripe-Signature header")
    pairs = [item.partition("=") for item in header.split(",")]
    stamps = [value for key, _, value in pairs if key.strip() == "t"]
    candidates = [value.strip() for key, _, value in pairs if key.strip() == "v1"]
    if len(stamps) != 1 or not candidates:
        raise WebhookRejected("webhook-malformed", "Stripe-Signature needs one t= and a v1=")
    stamp = _timestamp(stamps[0].strip(), tolerance_s, now)
    signed = f"{stamp}.".encode() + body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    if not any(hmac.compare_digest(c, e) for c in candidates for e in expected):
        raise WebhookRejected(
            "webhook-signature-invalid", "no signature matches this hook's secrets"
        )
    # Stripe events carry their id in the body; a delivery without one dedupes on its bytes.
    try:
        event_id = json.loads(body).get("id")
    except (ValueError, AttributeError):
        event_id = None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        event_id = "sha256:" + hashlib.sha256(signed).hexdigest()
    return VerifiedDelivery(event_id, stamp)


def sign_standard(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value a sender computes (used by tests and clients)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign_stripe(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class HookStore:
    def __init__(self, db: Database, secrets: SecretStore) -> None:
        self.db = db
        self.secrets = secrets

    def create(self, tenant_id: str, agent: str, scheme: str, tolerance_s: int) -> tuple[str, str]:
        """A new hook; returns (hook id, signing secret). The secret is shown only now."""
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}")
        hook_id = "hk_" + uuid.uuid4().hex
        secret, name = new_secret(), f"steward.hook.{hook_id}.1"
        self.secrets.set(tenant_id, name, secret)
        with self.db.session() as session:
            session.add(
                WebhookHook(
                    id=hook_id,
                    tenant_id=tenant_id,
                    agent=agent,
                    scheme=scheme,
                    secret_names=[name],
                    tolerance_s=tolerance_s,
                )
            )
        return hook_id, secret

    def get(self, hook_id: str, tenant_id: str | None = None) -> WebhookHook | None:
        with self.db.session() as session:
            hook = session.get(WebhookHook, hook_id)
        if hook is None or hook.revoked_at is not None:
            return None
        if tenant_id is not None and hook.tenant_id != tenant_id:
            return None
        return hook

    def list(self, tenant_id: str) -> list[WebhookHook]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(WebhookHook)
                    .where(WebhookHook.tenant_id == tenant_id, WebhookHook.revoked_at.is_(None))
                    .order_by(WebhookHook.created_at)
                )
            )

    def rotate(self, tenant_id: str, hook_id: str) -> str | None:
        """Add a new secret (the previous one stays valid until the next rotation).

        One transaction that locks the hook's row before reading its secrets: concurrent
        rotations take turns, so each returned secret is a distinct generation that verifies
        (read-then-write in two transactions let both extend the same list, and the second
        overwrote the first's secret under the same name).
        """
        secret = new_secret()
        with self.db.session() as session:
            locked = session.execute(
                update(WebhookHook)
                .where(
                    WebhookHook.id == hook_id,
                    WebhookHook.tenant_id == tenant_id,
                    WebhookHook.revoked_at.is_(None),
                )
                .values(tolerance_s=WebhookHook.tolerance_s)
            )
            if not getattr(locked, "rowcount", 0):
                return None
            hook = session.get(WebhookHook, hook_id, populate_existing=True)
            assert hook is not None
            names = list(hook.secret_names)
            generation = int(names[-1].rsplit(".", 1)[1]) + 1
            name = f"steward.hook.{hook_id}.{generation}"
            key_id = self.secrets.store_in(session, tenant_id, name, secret)
            hook.secret_names = [*names, name][-MAX_SECRETS:]
        self.secrets.record_set(tenant_id, name, key_id)
        return secret

    def revoke(self, tenant_id: str, hook_id: str) -> bool:
        with self.db.session() as session:
            hook = session.get(WebhookHook, hook_id)
            if hook is None or hook.tenant_id != tenant_id or hook.revoked_at is not None:
                return False
            hook.revoked_at = utcnow()
            return True

    def verify(
        self, hook: WebhookHook, headers: Mapping[str, str], body: bytes
    ) -> VerifiedDelivery:
        secrets = [
            self.secrets.reveal(hook.tenant_id, name, purpose={"hook_id": hook.id}, audited=False)
            for name in hook.secret_names
        ]
        verify = verify_standard if hook.scheme == "standard" else verify_stripe
        return verify(headers, body, secrets, hook.tolerance_s, time.time())

    def claim(self, hook: WebhookHook, delivery_id: str) -> bool:
        """Record the delivery id; False if it was seen before (a replay)."""
        try:
            with self.db.session() as session:
                session.add(
                    WebhookDelivery(
                        hook_id=hook.id, delivery_id=delivery_id, tenant_id=hook.tenant_id
                    )
                )
        except IntegrityError:
            return False
        return True

    def release(self, hook: WebhookHook, delivery_id: str) -> None:
        """Forget a claimed delivery whose run could not start, so the sender's retry works."""
        with self.db.session() as session:
            session.execute(
                delete(WebhookDelivery).where(
                    WebhookDelivery.hook_id == hook.id, WebhookDelivery.delivery_id == delivery_id
                )
            )

    def attach_run(self, hook: WebhookHook, delivery_id: str, run_id: str) -> None:
        with self.db.session() as session:
            row = session.get(WebhookDelivery, (hook.id, delivery_id))
            if row is not None:
                row.run_id = run_id
