"""Liveness and readiness probes; the only routes that need no API key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from steward.server.problems import problem

router = APIRouter(tags=["health"])
READY_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class SingleFlightProbe:
    """A blocking check run in a worker thread, at most one at a time.

    A check that hangs (a database host that swallows packets) outlives the caller's timeout;
    later callers join the one still in flight instead of each leaving another thread behind.
    """

    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check
        self._in_flight: asyncio.Future[None] | None = None

    async def __call__(self, timeout_s: float) -> None:
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(asyncio.to_thread(self._check))
            # Retrieve an abandoned check's outcome, so it is never "never retrieved".
            self._in_flight.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.wait_for(asyncio.shield(self._in_flight), timeout_s)


def _database_probe(request: Request) -> SingleFlightProbe:
    state = request.app.state
    probe: SingleFlightProbe | None = getattr(state, "database_probe", None)
    if probe is None:
        engine = state.db.engine

        def ping() -> None:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        probe = state.database_probe = SingleFlightProbe(ping)
    return probe


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> Any:
    try:
        await _database_probe(request)(READY_TIMEOUT_S)
    except Exception as exc:
        return problem(503, detail=f"database unavailable: {type(exc).__name__}")
    return {"status": "ready", "agents": sorted(request.app.state.engine.app.agents)}
