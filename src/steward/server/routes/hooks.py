"""Signed webhook ingress: `POST /hooks/{hook_id}` verifies the sender's HMAC signature, refuses
stale and replayed deliveries, and starts a run of the hook's agent with the payload as
untrusted input. No API key: the signature is the credential.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from steward import audit
from steward.errors import ApiError, Conflict
from steward.runs.engine import RunEngine, RunRequest
from steward.security.services import Security
from steward.security.webhooks import NO_MATCH, WebhookRejected

router = APIRouter(tags=["hooks"])


@router.post("/hooks/{hook_id}", status_code=202)
async def deliver(hook_id: str, request: Request) -> JSONResponse:
    security: Security = request.app.state.security
    engine: RunEngine = request.app.state.engine
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not ({"webhook-id", "webhook-signature"} <= headers.keys() or "stripe-signature" in headers):
        raise ApiError(
            400,
            "webhook-malformed",
            "Webhook rejected",
            "send webhook-id, webhook-timestamp and webhook-signature, or Stripe-Signature",
        )
    hook = await asyncio.to_thread(security.hooks.get, hook_id)
    if hook is None:
        # The same answer as a wrong signature: a hook's existence is not disclosed.
        raise ApiError(401, "webhook-signature-invalid", "Webhook rejected", NO_MATCH)
    body = await request.body()
    try:
        delivery = await asyncio.to_thread(security.hooks.verify, hook, headers, body)
    except WebhookRejected as exc:
        await audit.record_async(
            hook.tenant_id, "webhook.rejected", {"hook_id": hook.id, "reason": exc.reason}
        )
        status = 400 if exc.reason == "webhook-malformed" else 401
        raise ApiError(status, exc.reason, "Webhook rejected", exc.detail) from exc
    try:
        payload: Any = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, "malformed-json", "Malformed JSON", "the body is not JSON") from exc
    engine.agent(hook.agent).parse_input(payload)  # 422 before the delivery id is spent
    if not await asyncio.to_thread(security.hooks.claim, hook, delivery.delivery_id):
        await audit.record_async(
            hook.tenant_id,
            "webhook.replayed",
            {"hook_id": hook.id, "delivery_id": delivery.delivery_id},
        )
        raise Conflict(
            "webhook-replayed", f"delivery {delivery.delivery_id!r} was already accepted"
        )
    try:
        run = await engine.submit(
            RunRequest(
                tenant_id=hook.tenant_id,
                agent=hook.agent,
                input=payload,
                metadata={
                    "source": "webhook",
                    "hook_id": hook.id,
                    "delivery_id": delivery.delivery_id,
                    # Taint: the payload comes from outside; policy treats it as untrusted.
                    "untrusted_input": True,
                },
            )
        )
    except BaseException:
        await asyncio.to_thread(security.hooks.release, hook, delivery.delivery_id)
        raise
    await asyncio.to_thread(security.hooks.attach_run, hook, delivery.delivery_id, run.id)
    await audit.record_async(
        hook.tenant_id,
        "webhook.accepted",
        {"hook_id": hook.id, "delivery_id": delivery.delivery_id, "run_id": run.id},
    )
    return JSONResponse(
        {"run_id": run.id, "thread_id": run.thread_id, "status": run.status},
        status_code=202,
        headers={"Content-Location": f"/runs/{run.id}"},
    )
