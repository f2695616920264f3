"""Batch endpoints: one run per item of an uploaded dataset, on one agent, durably.

`POST /v1/batches` takes a JSON body naming the agent (a graph or assistant id) and the items,
as a JSON list (`items`), JSON Lines text (`jsonl`) or CSV text (`csv`); every item is checked
against the agent's input model before anything is stored. The processes that execute runs
work the batch (`steward.batch.driver`); this API reads its progress and results and pauses,
resumes or cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from steward.batch.store import BatchStore
from steward.batch.tables import BatchItemRow, BatchRow
from steward.batch.upload import invalid, items_of
from steward.errors import ApiError, Conflict, InvalidInput, NotFound
from steward.runs.engine import RunEngine
from steward.server.auth import Reader, Writer
from steward.server.openapi import answers
from steward.server.pagination import PageQuery
from steward.server.schemas import _bounded_depth

router = APIRouter(prefix="/v1/batches", tags=["batches"])


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, max_length=200, description="Graph or assistant id.")
    items: list[Any] | None = Field(default=None, description="One run input per entry.")
    jsonl: str | None = Field(default=None, description="JSON Lines: one run input per line.")
    csv: str | None = Field(default=None, description="CSV with a header row; a row per run.")
    concurrency: int = Field(default=8, ge=1, le=1000, description="Most runs at once.")
    rate_per_s: float | None = Field(
        default=None, gt=0, le=10_000, description="Most run starts per second."
    )
    max_attempts: int = Field(default=3, ge=1, le=20, description="Runs per item at most.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    _bounded = field_validator("items", "metadata")(_bounded_depth)


def _store(request: Request) -> BatchStore:
    store: BatchStore | None = getattr(request.app.state, "batches", None)
    if store is None:
        store = request.app.state.batches = BatchStore(request.app.state.db)
    return store


def _batch_json(batch: BatchRow, counts: dict[str, int]) -> dict[str, Any]:
    done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    return {
        "batch_id": batch.id,
        "agent": batch.agent,
        "status": batch.status,
        "total": batch.total,
        "done": done,
        "counts": counts,
        "concurrency": batch.concurrency,
        "rate_per_s": batch.rate_per_s,
        "max_attempts": batch.max_attempts,
        "metadata": batch.meta,
        "created_at": batch.created_at.isoformat(),
        "updated_at": batch.updated_at.isoformat(),
        "completed_at": batch.completed_at.isoformat() if batch.completed_at else None,
    }


async def _view(store: BatchStore, batch: BatchRow) -> dict[str, Any]:
    return _batch_json(batch, await asyncio.to_thread(store.counts, batch.id))


async def _get(store: BatchStore, tenant_id: str, batch_id: str) -> BatchRow:
    batch = await asyncio.to_thread(store.get, tenant_id, batch_id)
    if batch is None:
        raise NotFound("batch", batch_id)
    return batch


async def _graph_of(request: Request, tenant_id: str, agent: str) -> str:
    engine: RunEngine = request.app.state.engine
    if agent in engine.app.agents:
        return agent
    assistant = await asyncio.to_thread(request.app.state.platform.assistants.get, tenant_id, agent)
    if assistant is None:
        raise NotFound("assistant", agent)
    graph: str = assistant.graph_id
    return graph


def _check_items(request: Request, graph: str, items: list[Any]) -> None:
    agent = request.app.state.engine.agent(graph)
    for index, item in enumerate(items):
        try:
            agent.parse_input(item)
        except InvalidInput as exc:
            raise invalid(f"item {index}: {exc}") from None


@router.post("", status_code=201, responses=answers(404, 422))
async def create_batch(body: BatchCreate, principal: Writer, request: Request) -> JSONResponse:
    """Start a batch: one run per item, at most `concurrency` at once and `rate_per_s` a
    second, each failed run retried until `max_attempts`."""
    items = items_of(body.items, body.jsonl, body.csv)
    graph = await _graph_of(request, principal.tenant_id, body.agent)
    _check_items(request, graph, items)
    store = _store(request)
    batch = await asyncio.to_thread(
        store.create,
        principal.tenant_id,
        body.agent,
        items,
        concurrency=body.concurrency,
        rate_per_s=body.rate_per_s,
        max_attempts=body.max_attempts,
        metadata=body.metadata,
    )
    runtime = request.app.state.runtime
    if runtime.batches is not None:
        runtime.batches.wake()
    return JSONResponse(
        await _view(store, batch), status_code=201, headers={"Location": f"/v1/batches/{batch.id}"}
    )


@router.get("")
async def list_batches(
    principal: Reader, request: Request, page: PageQuery
) -> list[dict[str, Any]]:
    store = _store(request)
    batches = await asyncio.to_thread(
        store.list_batches, principal.tenant_id, page.limit, page.offset
    )
    return [await _view(store, batch) for batch in batches]


@router.get("/{batch_id}", responses=answers(404))
async def get_batch(batch_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    """The batch with its progress: items per state, and `done` of `total`."""
    store = _store(request)
    return await _view(store, await _get(store, principal.tenant_id, batch_id))


def _result_line(item: BatchItemRow) -> bytes:
    line = {
        "index": item.idx,
        "status": item.status,
        "attempts": item.attempts,
        "run_id": item.run_id,
        "output": item.output,
        "error": item.error,
    }
    return json.dumps(line, default=str).encode() + b"\n"


@router.get(
    "/{batch_id}/results",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "JSON Lines, one per item in input order",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **answers(404),
    },
)
async def batch_results(batch_id: str, principal: Reader, request: Request) -> StreamingResponse:
    """Every item's line in input order: its state, output (once it succeeded) or error."""
    store = _store(request)
    await _get(store, principal.tenant_id, batch_id)
    pages = store.results(batch_id)
    end: list[BatchItemRow] = []

    async def lines() -> AsyncIterator[bytes]:
        while (page := await asyncio.to_thread(next, pages, end)) is not end:
            yield b"".join(_result_line(item) for item in page)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def _move(
    request: Request, tenant_id: str, batch_id: str, status: str, when: tuple[str, ...]
) -> BatchRow:
    store = _store(request)
    batch = await _get(store, tenant_id, batch_id)
    if not await asyncio.to_thread(store.set_status, tenant_id, batch_id, status, when=when):
        batch = await _get(store, tenant_id, batch_id)
        if batch.status != status:
            raise Conflict("batch-state", f"batch {batch_id!r} is {batch.status}, not {when}")
    return await _get(store, tenant_id, batch.id)


@router.post("/{batch_id}/pause", responses=answers(404, 409))
async def pause_batch(batch_id: str, principal: Writer, request: Request) -> dict[str, Any]:
    """Start no more items; those in flight finish."""
    batch = await _move(request, principal.tenant_id, batch_id, "paused", ("running",))
    return await _view(_store(request), batch)


@router.post("/{batch_id}/resume", responses=answers(404, 409))
async def resume_batch(batch_id: str, principal: Writer, request: Request) -> dict[str, Any]:
    batch = await _move(request, principal.tenant_id, batch_id, "running", ("paused",))
    runtime = request.app.state.runtime
    if runtime.batches is not None:
        runtime.batches.wake()
    return await _view(_store(request), batch)


@router.post("/{batch_id}/cancel", responses=answers(404, 409))
async def cancel_batch(batch_id: str, principal: Writer, request: Request) -> dict[str, Any]:
    """Cancel the items not yet done, and the runs of those in flight."""
    store = _store(request)
    batch = await _move(request, principal.tenant_id, batch_id, "cancelled", ("running", "paused"))
    engine: RunEngine = request.app.state.engine
    for run_id in await asyncio.to_thread(store.in_flight_runs, batch_id):
        with contextlib.suppress(ApiError):  # deleted meanwhile: the item is cancelled anyway
            await engine.cancel(principal.tenant_id, run_id)
        await asyncio.to_thread(store.cancel_submitted, batch_id, run_id)
    return await _view(store, batch)
