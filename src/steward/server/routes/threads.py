"""Thread endpoints (LangGraph Platform shapes): create and read conversation threads."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import IntegrityError

from steward.errors import Conflict, NotFound
from steward.runs.engine import RunEngine
from steward.server.auth import Reader, Writer
from steward.server.schemas import ThreadCreate, thread_json

router = APIRouter(tags=["threads"])


@router.post("/threads")
async def create_thread(body: ThreadCreate, principal: Writer, request: Request) -> dict[str, Any]:
    engine: RunEngine = request.app.state.engine
    thread_id = body.thread_id or str(uuid.uuid4())
    existing = await asyncio.to_thread(engine.store.get_thread, principal.tenant_id, thread_id)
    if existing is not None:
        if body.if_exists == "do_nothing":
            return thread_json(existing)
        raise Conflict("thread-exists", f"thread {thread_id!r} already exists")
    try:
        thread = await asyncio.to_thread(
            engine.store.create_thread, principal.tenant_id, thread_id, body.metadata or {}
        )
    except IntegrityError as exc:  # created concurrently by the same tenant
        raise Conflict("thread-exists", f"thread {thread_id!r} already exists") from exc
    return thread_json(thread)


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    engine: RunEngine = request.app.state.engine
    thread = await asyncio.to_thread(engine.store.get_thread, principal.tenant_id, thread_id)
    if thread is None:
        raise NotFound("thread", thread_id)
    return thread_json(thread)
