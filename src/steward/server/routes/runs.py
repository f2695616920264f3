"""Run endpoints, thread-scoped and stateless, in LangGraph Platform's paths and shapes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from steward.errors import NotFound
from steward.runs.engine import RunEngine, RunRequest
from steward.security.keys import Principal
from steward.server import rate_limits
from steward.server.auth import USER_HEADER, Reader, Writer
from steward.server.routes.webhooks import check_webhook
from steward.server.schemas import RunCreate, run_json, run_result

router = APIRouter(tags=["runs"])


def _engine(request: Request) -> RunEngine:
    engine: RunEngine = request.app.state.engine
    return engine


def _location(run_id: str, thread_id: str | None) -> str:
    return f"/threads/{thread_id}/runs/{run_id}" if thread_id else f"/runs/{run_id}"


async def _ensure_thread(engine: RunEngine, principal: Principal, thread_id: str) -> None:
    if await asyncio.to_thread(engine.store.get_thread, principal.tenant_id, thread_id) is None:
        raise NotFound("thread", thread_id)


async def _submit(
    engine: RunEngine,
    principal: Principal,
    body: RunCreate,
    thread_id: str | None,
    request: Request,
) -> Any:
    header_user = request.headers.get(USER_HEADER)
    if body.user and body.user != header_user:  # the gate only saw the header's user
        await rate_limits.enforce(request.app.state, principal, body.user, key=False)
    if body.webhook is not None:
        await check_webhook(request.app.state.webhook_config, principal.tenant_id, body.webhook)
    if thread_id is not None:
        await _ensure_thread(engine, principal, thread_id)
    return await engine.submit(
        RunRequest(
            tenant_id=principal.tenant_id,
            agent=body.assistant_id,
            input=body.input,
            thread_id=thread_id,
            metadata=body.metadata,
            user_id=body.user or header_user,
            webhook=body.webhook,
            multitask_strategy=body.multitask_strategy or "reject",
        )
    )


# -- background --------------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs")
async def create_thread_run(
    thread_id: str, body: RunCreate, principal: Writer, request: Request
) -> JSONResponse:
    run = await _submit(_engine(request), principal, body, thread_id, request)
    return JSONResponse(
        run_json(run), headers={"Content-Location": _location(run.id, run.thread_id)}
    )


@router.post("/runs")
async def create_run(body: RunCreate, principal: Writer, request: Request) -> JSONResponse:
    run = await _submit(_engine(request), principal, body, None, request)
    return JSONResponse(
        run_json(run), headers={"Content-Location": _location(run.id, run.thread_id)}
    )


# -- wait --------------------------------------------------------------------------------------


async def _wait(
    request: Request, principal: Principal, body: RunCreate, thread_id: str | None
) -> JSONResponse:
    engine = _engine(request)
    run = await _submit(engine, principal, body, thread_id, request)
    finished = await engine.wait(principal.tenant_id, run.id)
    return JSONResponse(
        run_result(finished), headers={"Content-Location": _location(run.id, run.thread_id)}
    )


@router.post("/threads/{thread_id}/runs/wait")
async def wait_thread_run(
    thread_id: str, body: RunCreate, principal: Writer, request: Request
) -> JSONResponse:
    return await _wait(request, principal, body, thread_id)


@router.post("/runs/wait")
async def wait_run(body: RunCreate, principal: Writer, request: Request) -> JSONResponse:
    return await _wait(request, principal, body, None)


# -- stream ------------------------------------------------------------------------------------


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def _stream(
    request: Request, principal: Principal, body: RunCreate, thread_id: str | None
) -> StreamingResponse:
    engine = _engine(request)
    modes = body.stream_modes()
    run = await _submit(engine, principal, body, thread_id, request)

    async def events() -> AsyncIterator[bytes]:
        yield _sse("metadata", {"run_id": run.id, "thread_id": run.thread_id, "attempt": 1})
        # The run's event log is replayed from its start, so nothing sent before now is lost.
        async for message in engine.events(principal.tenant_id, run.id):
            if message["event"] == "error" or message["event"] in modes:
                yield _sse(message["event"], message["data"])

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={
            "Content-Location": _location(run.id, run.thread_id),
            "Cache-Control": "no-store",
        },
    )


@router.post("/threads/{thread_id}/runs/stream")
async def stream_thread_run(
    thread_id: str, body: RunCreate, principal: Writer, request: Request
) -> StreamingResponse:
    return await _stream(request, principal, body, thread_id)


@router.post("/runs/stream")
async def stream_run(body: RunCreate, principal: Writer, request: Request) -> StreamingResponse:
    return await _stream(request, principal, body, None)


# -- inspect, join, cancel ---------------------------------------------------------------------


@router.get("/threads/{thread_id}/runs")
async def list_thread_runs(
    thread_id: str,
    principal: Reader,
    request: Request,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    status: str | None = None,
) -> list[dict[str, Any]]:
    engine = _engine(request)
    await _ensure_thread(engine, principal, thread_id)
    runs = await asyncio.to_thread(
        engine.store.list_runs,
        principal.tenant_id,
        thread_id=thread_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return [run_json(run) for run in runs]


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_thread_run(
    thread_id: str, run_id: str, principal: Reader, request: Request
) -> dict[str, Any]:
    return run_json(await _engine(request).get(principal.tenant_id, run_id, thread_id))


@router.get("/runs/{run_id}")
async def get_run(run_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    return run_json(await _engine(request).get(principal.tenant_id, run_id))


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    thread_id: str, run_id: str, principal: Reader, request: Request
) -> dict[str, Any]:
    engine = _engine(request)
    await engine.get(principal.tenant_id, run_id, thread_id)
    return run_result(await engine.wait(principal.tenant_id, run_id))


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    principal: Writer,
    request: Request,
    wait: bool = False,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:
    engine = _engine(request)
    await engine.cancel(principal.tenant_id, run_id, thread_id)
    if wait:
        await engine.wait(principal.tenant_id, run_id)
        return Response(status_code=204)
    return Response(status_code=202)
