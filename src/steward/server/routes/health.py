"""Liveness and readiness probes; the only routes that need no API key."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from steward.server.problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> Any:
    def ping() -> None:
        with request.app.state.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), 2.0)
    except Exception as exc:
        return problem(503, detail=f"database unavailable: {type(exc).__name__}")
    return {"status": "ready", "agents": sorted(request.app.state.engine.app.agents)}
