"""Run endpoints, thread-scoped and stateless, in LangGraph Platform's paths and shapes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from steward.errors import ApiError, NotFound, UserError
from steward.runs.approval import interrupt_json, reviewer_json
from steward.runs.engine import RunEngine, RunRequest
from steward.runs.launch import start_run
from steward.security.keys import Principal
from steward.server import rate_limits
from steward.server.auth import USER_HEADER, Reader, Writer
from steward.server.openapi import answers, event_stream
from steward.server.pagination import PageQuery
from steward.server.routes.webhooks import check_webhook
from steward.server.schemas import ApprovalDecision, RunCreate, run_json, run_result
from steward.store.runs import AWAITING_APPROVAL
from steward.store.schema import Run

router = APIRouter(tags=["runs"])


def _engine(request: Request) -> RunEngine:
    engine: RunEngine = request.app.state.engine
    return engine


def _location(run_id: str, thread_id: str | None) -> str:
    return f"/threads/{thread_id}/runs/{run_id}" if thread_id else f"/runs/{run_id}"


async def _result(engine: RunEngine, run: Run) -> dict[str, Any]:
    interrupts = None
    if run.stop_reason == AWAITING_APPROVAL:
        pending = await asyncio.to_thread(
            engine.approvals.for_run, run.tenant_id, run.id, pending_only=True
        )
        interrupts = [interrupt_json(approval) for approval in pending]
    return run_result(run, interrupts)


async def _ensure_thread(engine: RunEngine, principal: Principal, thread_id: str) -> None:
    if await asyncio.to_thread(engine.store.get_thread, principal.tenant_id, thread_id) is None:
        raise NotFound("thread", thread_id)


async def _submit(
    engine: RunEngine,
    principal: Principal,
    body: RunCreate,
    thread_id: str | None,
    request: Request,
) -> tuple[Run, int | str]:
    """Start a run, or resume a paused one (`command.resume`); with where its stream starts."""
    header_user = request.headers.get(USER_HEADER)
    user = principal.user_id or body.user or header_user
    if user and user != header_user:  # the gate only charged the header's user
        await rate_limits.enforce(request.app.state, principal, user, key=False)
    if body.webhook is not None:
        await check_webhook(request.app.state.webhook_config, principal.tenant_id, body.webhook)
    if thread_id is not None:
        await _ensure_thread(engine, principal, thread_id)
    resume = body.resume()
    if resume is not None:  # LangGraph's way to answer an interrupt: decide, then follow it
        if thread_id is None:
            raise UserError("command.resume needs a thread: use /threads/{thread_id}/runs…")
        approval = await engine.pending_approval_on_thread(principal.tenant_id, thread_id)
        await engine.decide(
            principal.tenant_id,
            approval.id,
            approve=resume.decision == "approve",
            arguments=resume.arguments,
            comment=resume.comment,
            decided_by=principal.key_id,
        )
        run = await engine.get(principal.tenant_id, approval.run_id)
        return run, approval.stream_after or 0
    run = await start_run(
        engine,
        request.app.state.platform.assistants,
        RunRequest(
            tenant_id=principal.tenant_id,
            agent=body.assistant_id,
            input=body.input,
            thread_id=thread_id,
            metadata=body.metadata,
            # An end user signed in by JWT is who the token says, whatever the body claims.
            user_id=user,
            webhook=body.webhook,
            multitask_strategy=body.multitask_strategy or "reject",
        ),
        config=body.config,
        context=body.context,
    )
    return run, 0


# -- background --------------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs")
async def create_thread_run(
    thread_id: str, body: RunCreate, principal: Writer, request: Request
) -> JSONResponse:
    run, _ = await _submit(_engine(request), principal, body, thread_id, request)
    return JSONResponse(
        run_json(run), headers={"Content-Location": _location(run.id, run.thread_id)}
    )


@router.post("/runs", responses=answers(404))
async def create_run(body: RunCreate, principal: Writer, request: Request) -> JSONResponse:
    run, _ = await _submit(_engine(request), principal, body, None, request)
    return JSONResponse(
        run_json(run), headers={"Content-Location": _location(run.id, run.thread_id)}
    )


# -- wait --------------------------------------------------------------------------------------


async def _wait(
    request: Request, principal: Principal, body: RunCreate, thread_id: str | None
) -> JSONResponse:
    engine = _engine(request)
    run, _ = await _submit(engine, principal, body, thread_id, request)
    finished = await engine.wait(principal.tenant_id, run.id)
    return JSONResponse(
        await _result(engine, finished),
        headers={"Content-Location": _location(run.id, run.thread_id)},
    )


@router.post("/threads/{thread_id}/runs/wait")
async def wait_thread_run(
    thread_id: str, body: RunCreate, principal: Writer, request: Request
) -> JSONResponse:
    return await _wait(request, principal, body, thread_id)


@router.post("/runs/wait", responses=answers(404))
async def wait_run(body: RunCreate, principal: Writer, request: Request) -> JSONResponse:
    return await _wait(request, principal, body, None)


# -- stream ------------------------------------------------------------------------------------


def _sse(event: str, data: Any, event_id: int | str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def _event_stream(
    request: Request,
    principal: Principal,
    run: Run,
    modes: set[str] | None,
    after: int | str,
    *,
    metadata: bool,
) -> StreamingResponse:
    """SSE of a run's events after `after`, with `id:` lines so a client can resume."""
    engine = _engine(request)
    stream = f"/threads/{run.thread_id}/runs/{run.id}/stream"

    async def events() -> AsyncIterator[bytes]:
        if metadata:
            yield _sse("metadata", {"run_id": run.id, "thread_id": run.thread_id, "attempt": 1})
        async for event_id, message in engine.events(principal.tenant_id, run.id, after=after):
            if modes is None or message["event"] == "error" or message["event"] in modes:
                yield _sse(message["event"], message["data"], event_id)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={
            "Content-Location": _location(run.id, run.thread_id),
            "Location": stream,  # where langgraph-sdk reconnects with Last-Event-ID
            "Cache-Control": "no-store",
        },
    )


async def _stream(
    request: Request, principal: Principal, body: RunCreate, thread_id: str | None
) -> StreamingResponse:
    # A new run's log is replayed from its start, so nothing sent before now is lost; a
    # resumed one continues after the pause.
    run, after = await _submit(_engine(request), principal, body, thread_id, request)
    return _event_stream(request, principal, run, body.stream_modes(), after, metadata=True)


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_class=StreamingResponse,
    responses=event_stream("The run's events, first `metadata` with its id"),
)
async def stream_thread_run(
    thread_id: str, body: RunCreate, principal: Writer, request: Request
) -> StreamingResponse:
    return await _stream(request, principal, body, thread_id)


@router.post(
    "/runs/stream",
    response_class=StreamingResponse,
    responses={**event_stream("The run's events, first `metadata` with its id"), **answers(404)},
)
async def stream_run(body: RunCreate, principal: Writer, request: Request) -> StreamingResponse:
    return await _stream(request, principal, body, None)


# -- inspect, join, cancel ---------------------------------------------------------------------


@router.get("/threads/{thread_id}/runs")
async def list_thread_runs(
    thread_id: str,
    principal: Reader,
    request: Request,
    page: PageQuery,
    status: Annotated[str | None, Query(max_length=32)] = None,
) -> list[dict[str, Any]]:
    engine = _engine(request)
    await _ensure_thread(engine, principal, thread_id)
    runs = await asyncio.to_thread(
        engine.store.list_runs,
        principal.tenant_id,
        thread_id=thread_id,
        status=status,
        limit=page.limit,
        offset=page.offset,
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
    return await _result(engine, await engine.wait(principal.tenant_id, run_id))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    response_class=StreamingResponse,
    responses=event_stream("The run's events after `Last-Event-ID`"),
)
async def join_stream(
    thread_id: str,
    run_id: str,
    principal: Reader,
    request: Request,
    stream_mode: Annotated[list[str] | None, Query()] = None,
) -> StreamingResponse:
    """Follow a run's events; with `Last-Event-ID`, only those after it (a resumed stream)."""
    run = await _engine(request).get(principal.tenant_id, run_id, thread_id)
    last = request.headers.get("last-event-id", "0").strip() or "0"
    if not last.isdigit() or len(last) > 19:
        raise ApiError(
            400,
            "invalid-last-event-id",
            "Invalid Last-Event-ID",
            f"Last-Event-ID must be an event id from this stream, not {last[:40]!r}",
        )
    modes = set(stream_mode) if stream_mode else None
    return _event_stream(request, principal, run, modes, int(last), metadata=False)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    status_code=202,
    response_class=Response,
    responses={204: {"description": "Cancelled and ended (`wait=true`)"}},
)
async def cancel_run(
    thread_id: str,
    run_id: str,
    principal: Writer,
    request: Request,
    wait: bool = False,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:
    engine = _engine(request)
    await engine.cancel(principal.tenant_id, run_id, thread_id, delete=action == "rollback")
    if wait and action != "rollback":
        await engine.wait(principal.tenant_id, run_id)
        return Response(status_code=204)
    return Response(status_code=202)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, principal: Writer, request: Request) -> Response:
    """Delete a run; an unfinished one is cancelled first."""
    await _engine(request).cancel(principal.tenant_id, run_id, thread_id, delete=True)
    return Response(status_code=204)


# -- approvals ---------------------------------------------------------------------------------


@router.get("/runs/{run_id}/approvals")
async def list_approvals(run_id: str, principal: Reader, request: Request) -> list[dict[str, Any]]:
    """The run's approvals, pending and decided, oldest first."""
    engine = _engine(request)
    await engine.get(principal.tenant_id, run_id)
    approvals = await asyncio.to_thread(engine.approvals.for_run, principal.tenant_id, run_id)
    return [reviewer_json(approval) for approval in approvals]


@router.post("/runs/{run_id}/approvals/{approval_id}")
async def decide_approval(
    run_id: str, approval_id: str, body: ApprovalDecision, principal: Writer, request: Request
) -> dict[str, Any]:
    """Approve (optionally with edited arguments) or reject a paused tool call."""
    engine = _engine(request)
    approval = await asyncio.to_thread(engine.approvals.get, principal.tenant_id, approval_id)
    if approval is None or approval.run_id != run_id:
        raise NotFound("approval", approval_id)
    decided = await engine.decide(
        principal.tenant_id,
        approval_id,
        approve=body.decision == "approve",
        arguments=body.arguments,
        comment=body.comment,
        decided_by=principal.key_id,
    )
    return reviewer_json(decided)
