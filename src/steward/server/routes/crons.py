"""Cron endpoints (LangGraph Platform's): schedules that start a normal run at each tick.

A schedule is a 5-field cron expression (or 6 fields, the last one seconds), read in `timezone`
(IANA, UTC by default), until `end_time`, while `enabled`. Each tick starts one run, whatever
the number of processes (see `steward.store.crons`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from steward.errors import NotFound, UserError
from steward.runs.platform import Platform
from steward.security.keys import Principal
from steward.server.auth import USER_HEADER, Reader, Writer
from steward.server.pagination import DEFAULT_LIMIT, Limit, Offset
from steward.server.routes.webhooks import check_webhook
from steward.server.schemas import _bounded_depth, configurable_object
from steward.store.crons import Cron, CronFilters, CronSortBy, InvalidSchedule, check_schedule

router = APIRouter(tags=["crons"])
_RUN_FIELDS = ("input", "config", "context", "webhook", "multitask_strategy", "metadata")
_JSON = ("input", "metadata", "config", "context")
CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "now",
    "on_run_completed",
    "enabled",
]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class CronPatch(BaseModel):
    """Every field optional; unknown ones (stream options, interrupts) are ignored."""

    model_config = ConfigDict(extra="ignore")

    schedule: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    end_time: datetime | None = None
    enabled: bool | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = Field(default=None, min_length=1, max_length=2048)
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] | None = None

    _bounded = field_validator(*_JSON)(_bounded_depth)
    _configurable = field_validator("config")(configurable_object)
    _aware = field_validator("end_time")(_utc)

    def payload(self) -> dict[str, Any]:
        given = self.model_dump(mode="json", exclude_unset=True)
        return {name: given[name] for name in _RUN_FIELDS if given.get(name) is not None}


class CronCreate(CronPatch):
    schedule: str = Field(min_length=1, max_length=200)
    assistant_id: str = Field(min_length=1, max_length=200)


class CronCount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    assistant_id: str | None = Field(default=None, max_length=200)
    thread_id: str | None = Field(default=None, max_length=64)
    metadata: dict[str, Any] | None = None

    _bounded = field_validator("metadata")(_bounded_depth)


class CronSearch(CronCount):
    enabled: bool | None = None
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0
    sort_by: CronSortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[CronField] | None = Field(default=None, max_length=15)


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def _create(
    request: Request, principal: Principal, body: CronCreate, thread_id: str | None
) -> dict[str, Any]:
    platform = _platform(request)
    try:
        check_schedule(body.schedule, body.timezone)
    except InvalidSchedule as exc:
        raise UserError(str(exc)) from exc
    assistant = await asyncio.to_thread(
        platform.assistants.get, principal.tenant_id, body.assistant_id
    )
    if assistant is None:
        raise NotFound("assistant", body.assistant_id)
    # Refused now, not at every tick: input the agent would refuse (a 422).
    platform.engine.agent(assistant.graph_id).parse_input(body.input)
    if thread_id is not None and (
        await asyncio.to_thread(platform.engine.store.get_thread, principal.tenant_id, thread_id)
        is None
    ):
        raise NotFound("thread", thread_id)
    if body.webhook is not None:
        await check_webhook(request.app.state.webhook_config, principal.tenant_id, body.webhook)
    cron = await asyncio.to_thread(
        platform.crons.create,
        principal.tenant_id,
        assistant_id=body.assistant_id,
        thread_id=thread_id,
        schedule=body.schedule,
        timezone=body.timezone,
        end_time=body.end_time,
        enabled=body.enabled is not False,
        payload={"assistant_id": body.assistant_id, **body.payload()},
        metadata=body.metadata or {},
        user_id=principal.user_id or request.headers.get(USER_HEADER),
        on_run_completed=body.on_run_completed if thread_id is None else None,
    )
    platform.wake()
    return cron.to_json()


@router.post("/runs/crons", responses={404: {"description": "No such assistant"}})
async def create_cron(body: CronCreate, principal: Writer, request: Request) -> dict[str, Any]:
    """A cron whose every tick starts a stateless run (on a new thread of its own)."""
    return await _create(request, principal, body, None)


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(
    thread_id: str, body: CronCreate, principal: Writer, request: Request
) -> dict[str, Any]:
    """A cron whose every tick starts a run on the thread (queued behind a running one unless
    `multitask_strategy` says otherwise)."""
    return await _create(request, principal, body, thread_id)


@router.post("/runs/crons/search")
async def search_crons(
    body: CronSearch, principal: Reader, request: Request
) -> list[dict[str, Any]]:
    filters = CronFilters(body.assistant_id, body.thread_id, body.enabled, body.metadata)
    found: list[Cron] = await asyncio.to_thread(
        _platform(request).crons.search,
        principal.tenant_id,
        filters,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by or "created_at",
        descending=(body.sort_order or "desc") == "desc",
    )
    items = [cron.to_json() for cron in found]
    if body.select:
        items = [{k: v for k, v in item.items() if k in body.select} for item in items]
    return items


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, principal: Reader, request: Request) -> int:
    filters = CronFilters(body.assistant_id, body.thread_id, None, body.metadata)
    return await asyncio.to_thread(_platform(request).crons.count, principal.tenant_id, filters)


@router.patch("/runs/crons/{cron_id}")
async def update_cron(
    cron_id: str, body: CronPatch, principal: Writer, request: Request
) -> dict[str, Any]:
    """Change the schedule or the runs it starts; the next tick is reckoned from now."""
    platform = _platform(request)
    given = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {
        name: given[name]
        for name in ("schedule", "timezone", "end_time", "enabled", "on_run_completed")
        if name in given and (given[name] is not None or name == "end_time")
    }
    if "metadata" in given and given["metadata"] is not None:
        changes["metadata"] = given["metadata"]
    changes["payload"] = body.payload()
    if body.webhook is not None:
        await check_webhook(request.app.state.webhook_config, principal.tenant_id, body.webhook)
    try:
        cron = await asyncio.to_thread(platform.crons.update, principal.tenant_id, cron_id, changes)
    except InvalidSchedule as exc:
        raise UserError(str(exc)) from exc
    if cron is None:
        raise NotFound("cron", cron_id)
    platform.wake()
    return cron.to_json()


@router.delete("/runs/crons/{cron_id}", status_code=204, response_class=Response)
async def delete_cron(cron_id: str, principal: Writer, request: Request) -> Response:
    if not await asyncio.to_thread(_platform(request).crons.delete, principal.tenant_id, cron_id):
        raise NotFound("cron", cron_id)
    return Response(status_code=204)
