"""Webhook endpoints: the delivery record of a run's webhook, and the checks a run's URL passes."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from steward.errors import ApiError, NotFound
from steward.server.auth import Reader
from steward.webhooks.dispatcher import WebhookConfig
from steward.webhooks.store import WebhookStore
from steward.webhooks.targets import resolve

router = APIRouter(tags=["webhooks"])


async def check_webhook(config: WebhookConfig, tenant_id: str, url: str) -> None:
    """Refuse, before the run is accepted, a webhook that could never be sent."""
    if config.secret_for(tenant_id) is None:
        raise ApiError(
            422,
            "webhook-not-configured",
            "Webhooks not configured",
            "no webhook signing secret is configured for this tenant "
            "(STEWARD_WEBHOOK_SECRET or STEWARD_WEBHOOK_TENANT_SECRETS)",
        )
    await resolve(url, config.allowed_networks)


@router.get("/runs/{run_id}/webhooks")
async def run_webhooks(run_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    """The run's webhook delivery: its state and every attempt (status code, error, times)."""
    store: WebhookStore = request.app.state.webhook_store
    run = await asyncio.to_thread(store.run, principal.tenant_id, run_id)
    if run is None:
        raise NotFound("run", run_id)
    if run.webhook is None:
        raise NotFound("webhook of run", run_id)
    delivery = await asyncio.to_thread(store.deliveries_of, principal.tenant_id, run_id)
    if delivery is None:  # the run has not ended yet, or its delivery is about to be created
        delivery = {"state": "waiting", "attempts": 0, "next_attempt_at": None, "history": []}
    return {"run_id": run_id, "url": run.webhook, **delivery}
