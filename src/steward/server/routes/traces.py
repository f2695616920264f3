"""A run's trace: the spans the run emitted (invoke_agent, chat, execute_tool), tenant-scoped."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from steward.observe.trace_store import list_run_spans
from steward.runs.engine import RunEngine
from steward.server.auth import Reader

router = APIRouter(tags=["traces"])


@router.get("/runs/{run_id}/trace")
async def run_trace(run_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    engine: RunEngine = request.app.state.engine
    await engine.get(principal.tenant_id, run_id)  # 404 for unknown or another tenant's run
    await asyncio.to_thread(request.app.state.tracing.force_flush, 5_000)
    spans = await asyncio.to_thread(
        list_run_spans, request.app.state.db, principal.tenant_id, run_id
    )
    return {"run_id": run_id, "spans": spans}
