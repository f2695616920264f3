"""Thread endpoints (LangGraph Platform shapes): create, read, search, update, delete, state."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError

from steward.errors import Conflict, NotFound
from steward.runs.approval import interrupt_json
from steward.runs.engine import RunEngine
from steward.security.keys import Principal
from steward.server.auth import Reader, Writer
from steward.server.schemas import (
    ThreadCreate,
    ThreadHistory,
    ThreadPatch,
    ThreadSearch,
    ThreadStateUpdate,
    iso,
    thread_json,
)
from steward.store.schema import Thread

router = APIRouter(tags=["threads"])


def _engine(request: Request) -> RunEngine:
    engine: RunEngine = request.app.state.engine
    return engine


async def _thread(engine: RunEngine, principal: Principal, thread_id: str) -> Thread:
    thread = await asyncio.to_thread(engine.store.get_thread, principal.tenant_id, thread_id)
    if thread is None:
        raise NotFound("thread", thread_id)
    return thread


async def _interrupts(engine: RunEngine, thread: Thread) -> dict[str, list[dict[str, Any]]]:
    pending = await asyncio.to_thread(
        engine.approvals.pending_on_thread, thread.tenant_id, thread.id
    )
    interrupts: dict[str, list[dict[str, Any]]] = {}
    for approval in pending:
        interrupts.setdefault(approval.run_id, []).append(interrupt_json(approval))
    return interrupts


async def _full_json(engine: RunEngine, thread: Thread) -> dict[str, Any]:
    return thread_json(thread, await _interrupts(engine, thread))


@router.post("/threads")
async def create_thread(body: ThreadCreate, principal: Writer, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    thread_id = body.thread_id or str(uuid.uuid4())
    existing = await asyncio.to_thread(engine.store.get_thread, principal.tenant_id, thread_id)
    if existing is not None:
        if body.if_exists == "do_nothing":
            return await _full_json(engine, existing)
        raise Conflict("thread-exists", f"thread {thread_id!r} already exists")
    try:
        thread = await asyncio.to_thread(
            engine.store.create_thread, principal.tenant_id, thread_id, body.metadata or {}
        )
    except IntegrityError as exc:  # created concurrently by the same tenant
        raise Conflict("thread-exists", f"thread {thread_id!r} already exists") from exc
    return thread_json(thread)


@router.post("/threads/search")
async def search_threads(
    body: ThreadSearch, principal: Reader, request: Request
) -> list[dict[str, Any]]:
    engine = _engine(request)
    threads = await asyncio.to_thread(
        engine.threads.search,
        principal.tenant_id,
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
    )
    return [await _full_json(engine, thread) for thread in threads]


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    return await _full_json(engine, await _thread(engine, principal, thread_id))


@router.patch("/threads/{thread_id}")
async def patch_thread(
    thread_id: str, body: ThreadPatch, principal: Writer, request: Request
) -> dict[str, Any]:
    engine = _engine(request)
    thread = await asyncio.to_thread(
        engine.threads.update_metadata, principal.tenant_id, thread_id, body.metadata
    )
    if thread is None:
        raise NotFound("thread", thread_id)
    return await _full_json(engine, thread)


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, principal: Writer, request: Request) -> Response:
    await _engine(request).delete_thread(principal.tenant_id, thread_id)
    return Response(status_code=204)


def _state(thread: Thread, interrupts: list[dict[str, Any]], checkpoint: str) -> dict[str, Any]:
    return {
        "values": thread.values,
        "next": [],
        "tasks": [{"id": i["id"], "name": "approval", "interrupts": [i]} for i in interrupts],
        "interrupts": interrupts,
        "metadata": thread.meta,
        "created_at": iso(thread.updated_at),
        "checkpoint": {"thread_id": thread.id, "checkpoint_ns": "", "checkpoint_id": checkpoint},
        "parent_checkpoint": None,
    }


@router.get("/threads/{thread_id}/state")
async def get_thread_state(thread_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    """The thread's current values (its last successful run's output) and pending calls."""
    engine = _engine(request)
    thread = await _thread(engine, principal, thread_id)
    interrupts = [i for items in (await _interrupts(engine, thread)).values() for i in items]
    return _state(thread, interrupts, iso(thread.updated_at) or "")


@router.post("/threads/{thread_id}/state")
async def update_thread_state(
    thread_id: str, body: ThreadStateUpdate, principal: Writer, request: Request
) -> dict[str, Any]:
    """Replace the thread's values; refused while a run holds the thread."""
    engine = _engine(request)
    await _thread(engine, principal, thread_id)
    active = await asyncio.to_thread(
        engine.store.active_run_on_thread, principal.tenant_id, thread_id
    )
    if active is not None:
        raise Conflict("thread-busy", f"thread {thread_id!r} has run {active.id!r} active")
    thread = await asyncio.to_thread(
        engine.threads.set_values, principal.tenant_id, thread_id, body.values
    )
    if thread is None:
        raise NotFound("thread", thread_id)
    return {"checkpoint": {"thread_id": thread_id, "checkpoint_id": iso(thread.updated_at)}}


@router.post("/threads/{thread_id}/history")
async def thread_history(
    thread_id: str, body: ThreadHistory, principal: Reader, request: Request
) -> list[dict[str, Any]]:
    """Past states, newest first: the output of each successful run on the thread."""
    engine = _engine(request)
    thread = await _thread(engine, principal, thread_id)
    runs = await asyncio.to_thread(
        engine.threads.history, principal.tenant_id, thread_id, body.limit
    )
    states = []
    for run in runs:
        state = _state(thread, [], run.id)
        state["values"] = run.output or {}
        state["created_at"] = iso(run.ended_at)
        state["metadata"] = {**thread.meta, "run_id": run.id}
        states.append(state)
    return states
