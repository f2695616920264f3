"""`POST /threads/count` and `POST /threads/{thread_id}/copy` (LangGraph Platform's)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, field_validator

from steward.errors import NotFound
from steward.runs.engine import RunEngine
from steward.server.auth import Reader, Writer
from steward.server.schemas import _bounded_depth, thread_json
from steward.store.thread_copies import copy_thread, count_threads

router = APIRouter(tags=["threads"])


class ThreadCount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None

    _bounded = field_validator("metadata", "values")(_bounded_depth)


@router.post("/threads/count")
async def threads_count(body: ThreadCount, principal: Reader, request: Request) -> int:
    """How many threads `/threads/search` would find with these filters."""
    engine: RunEngine = request.app.state.engine
    return await asyncio.to_thread(
        count_threads,
        engine.store.db,
        principal.tenant_id,
        metadata=body.metadata,
        values=body.values,
        status=body.status,
    )


@router.post("/threads/{thread_id}/copy")
async def copy(thread_id: str, principal: Writer, request: Request) -> dict[str, Any]:
    """A new thread with the same metadata, values and finished runs (its history)."""
    engine: RunEngine = request.app.state.engine
    thread = await asyncio.to_thread(copy_thread, engine.store.db, principal.tenant_id, thread_id)
    if thread is None:
        raise NotFound("thread", thread_id)
    return thread_json(thread)
