"""Delivers the webhooks of finished runs: signed POSTs, retried with exponential backoff and
full jitter, each attempt recorded; pending deliveries resume after a restart.

Runs in every process that executes runs. It is woken when a run of this process ends and also
looks every `POLL_S` seconds, which covers runs ended elsewhere (a cancel through the API) and
deliveries left by a process that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from steward.config import Settings
from steward.store.schema import Run, utcnow
from steward.webhooks.signing import secret_key, signed_headers
from steward.webhooks.store import Due, WebhookStore, as_utc
from steward.webhooks.targets import Network, WebhookTargetRefused, parse_networks, resolve

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("steward.webhooks")
POLL_S = 2.0
USER_AGENT = "Steward-Webhooks/1"


@dataclass(frozen=True)
class WebhookConfig:
    # Signing secrets stay wrapped (repr, logs, tracebacks show `**********`) until the moment
    # a delivery is signed.
    secret: SecretStr | None = None
    tenant_secrets: dict[str, SecretStr] = field(default_factory=dict)
    allowed_networks: list[Network] = field(default_factory=list)
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 600.0
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        config = cls(
            secret=settings.webhook_secret,
            tenant_secrets={
                tenant: SecretStr(secret)
                for tenant, secret in settings.webhook_tenant_secrets.items()
            },
            allowed_networks=parse_networks(settings.webhook_allowed_networks),
            max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s,
            backoff_cap_s=settings.webhook_backoff_cap_s,
            timeout_s=settings.webhook_timeout_s,
        )
        for secret in [config.secret, *config.tenant_secrets.values()]:
            if secret is not None:
                # A malformed secret stops the start, not a delivery.
                secret_key(secret.get_secret_value())
        return config

    def secret_for(self, tenant_id: str) -> SecretStr | None:
        return self.tenant_secrets.get(tenant_id, self.secret)

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        bound = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(0, bound)


def payload(run: Run, render: Callable[[Run], dict[str, Any]]) -> bytes:
    """The body, identical on every attempt: the run as the API shows it."""
    ended = run.ended_at or run.updated_at
    return json.dumps(
        {
            "type": f"run.{run.status}",
            # RFC 3339 with its offset, like the run's own times inside `data`.
            "timestamp": as_utc(ended).isoformat() if ended else None,
            "data": render(run),
        },
        default=str,
        separators=(",", ":"),
    ).encode()


class WebhookDispatcher:
    def __init__(
        self, store: WebhookStore, config: WebhookConfig, render: Callable[[Run], dict[str, Any]]
    ) -> None:
        self.store = store
        self.config = config
        self._render = render
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    @property
    def lease_s(self) -> float:
        return self.config.timeout_s + 5.0

    def notify(self, _run_id: str | None = None) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.store.discover)
                for due in await asyncio.to_thread(self.store.claim_due, self.lease_s):
                    task = asyncio.get_running_loop().create_task(self._deliver(due))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            except Exception:  # the database may be restarting: look again shortly
                log.exception("webhook dispatcher pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()

    async def _deliver(self, due: Due) -> None:
        try:
            await self._deliver_once(due)
        except Exception:  # e.g. the database went away: the lease lapses and it is retried
            log.exception("webhook delivery for run %s could not be recorded", due.run_id)

    async def _deliver_once(self, due: Due) -> None:
        started = utcnow()
        status_code, error = await self._attempt(due)
        success = status_code is not None and 200 <= status_code < 300
        next_at: datetime | None = None
        if not success and due.attempt < self.config.max_attempts and error != _GONE:
            next_at = utcnow() + timedelta(seconds=self.config.backoff_s(due.attempt))
        state = await asyncio.to_thread(
            self.store.record,
            due,
            started_at=started,
            status_code=status_code,
            error=error,
            next_attempt_at=next_at,
        )
        if state == "failed":
            log.warning("webhook for run %s failed after %d attempts", due.run_id, due.attempt)

    def _http_client(self) -> httpx.AsyncClient:
        """The delivery client, made for the first delivery: building one (its TLS context)
        costs a tenth of a second, which a process that never delivers need not spend at start."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.config.timeout_s, follow_redirects=False, trust_env=False
            )
        return self._client

    async def _attempt(self, due: Due) -> tuple[int | None, str | None]:
        import httpx

        run = await asyncio.to_thread(self.store.run, due.tenant_id, due.run_id)
        if run is None:
            return None, _GONE
        secret = self.config.secret_for(due.tenant_id)
        if secret is None:
            return None, "no webhook secret is configured for this tenant"
        try:
            target = await resolve(due.url, self.config.allowed_networks)
        except WebhookTargetRefused as exc:
            return None, exc.detail
        body = payload(run, self._render)
        headers = signed_headers(secret.get_secret_value(), due.message_id, int(time.time()), body)
        headers |= {"host": target.host_header, "user-agent": USER_AGENT}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with self._http_client().stream(
                "POST", target.pinned_url, content=body, headers=headers, extensions=extensions
            ) as response:  # the receiver's body is never read: it may be anything
                status = response.status_code
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}".strip()[:1000]
        return status, None if 200 <= status < 300 else f"HTTP {status}"


_GONE = "the run no longer exists"
