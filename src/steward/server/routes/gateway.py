"""The gateway's read side: spend per key, user, agent, tenant or model (tenant-scoped), the
caller's remaining room under each cap, and the Prometheus metrics."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.responses import Response

from steward.errors import Forbidden
from steward.models.budget import SpendScope
from steward.models.gateway import Gateway
from steward.server.auth import Reader, authenticated
from steward.store.spend import GroupBy, SpendLedger

router = APIRouter(tags=["gateway"])


async def _metrics_reader(request: Request) -> None:
    """The `metrics_token` (checked by the auth gate) or an admin key may scrape."""
    if getattr(request.state, "metrics_reader", False):
        return
    principal = await authenticated(request)
    if principal.role != "admin":
        raise Forbidden("metrics are for admin keys and the metrics token")


@router.get("/spend")
async def spend(
    principal: Reader,
    request: Request,
    group_by: Annotated[GroupBy, Query()] = "key",
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> dict[str, Any]:
    """Calls, tokens and USD of this tenant's model calls, grouped."""
    gateway: Gateway = request.app.state.gateway
    ledger = gateway.ledger or SpendLedger(request.app.state.db)
    await ledger.flush()
    totals = await asyncio.to_thread(
        ledger.totals, principal.tenant_id, group_by, since=since, until=until
    )
    return {"group_by": group_by, "totals": [t.to_json() for t in totals]}


@router.get("/spend/remaining")
async def remaining(
    principal: Reader,
    request: Request,
    user: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """USD left under each cap that applies to this key (and `user`, when given)."""
    gateway: Gateway = request.app.state.gateway
    scope = SpendScope(principal.tenant_id, principal.key_id, user)
    return {"remaining_usd": await gateway.budget.remaining(scope)}


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(_metrics_reader)])
async def metrics(request: Request) -> Response:
    """Prometheus text; OpenMetrics (with trace-id exemplars) when the scraper accepts it."""
    gateway: Gateway = request.app.state.gateway
    openmetrics = "application/openmetrics-text" in request.headers.get("accept", "")
    # In a thread: some collectors query the store at scrape time.
    body, media_type = await asyncio.to_thread(gateway.metrics.runtime.exposition, openmetrics)
    return Response(body, media_type=media_type)
