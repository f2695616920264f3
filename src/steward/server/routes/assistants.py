"""Assistant endpoints (LangGraph Platform's): configured, versioned uses of a served agent.

Every served agent is also its own "system" assistant (`assistant_id` = the agent's name);
`POST /assistants` stores more, each change a new immutable version, per tenant.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import IntegrityError

from steward.errors import Conflict, NotFound
from steward.runs.agent import Agent
from steward.runs.platform import Platform
from steward.server.auth import Reader, Writer
from steward.server.openapi import answers
from steward.server.pagination import DEFAULT_LIMIT, Limit, Offset
from steward.server.schemas import _bounded_depth
from steward.store.assistants import (
    AssistantExists,
    AssistantRecord,
    DeployedVersion,
    Filters,
    SortBy,
    SystemAssistant,
    UnknownVersion,
)

router = APIRouter(tags=["assistants"])
AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]
_ID = r"^[A-Za-z0-9_.:-]+$"
_JSON = ("config", "context", "metadata")


class AssistantCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    graph_id: str = Field(min_length=1, max_length=200)
    assistant_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=_ID)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)

    _bounded = field_validator(*_JSON)(_bounded_depth)


class AssistantPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    graph_id: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)

    _bounded = field_validator(*_JSON)(_bounded_depth)


class AssistantCount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    graph_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)

    _bounded = field_validator("metadata")(_bounded_depth)

    def filters(self) -> Filters:
        return Filters(graph_id=self.graph_id, name=self.name, metadata=self.metadata)


class AssistantSearch(AssistantCount):
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[AssistantField] | None = Field(default=None, max_length=10)


class VersionsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0

    _bounded = field_validator("metadata")(_bounded_depth)


class SetLatest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int = Field(ge=1, le=2**31 - 1)


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def _assistant(platform: Platform, tenant_id: str, assistant_id: str) -> AssistantRecord:
    record = await asyncio.to_thread(platform.assistants.get, tenant_id, assistant_id)
    if record is None:
        raise NotFound("assistant", assistant_id)
    return record


def _graph(platform: Platform, graph_id: str) -> Agent:
    agent = platform.engine.app.agents.get(graph_id)
    if agent is None:
        raise NotFound("graph", graph_id)
    return agent


def _system(assistant_id: str) -> Conflict:
    return Conflict(
        "system-assistant",
        f"assistant {assistant_id!r} is a served agent's own; create an assistant to configure it",
    )


@router.post("/assistants", responses=answers(404, 409))
async def create_assistant(
    body: AssistantCreate, principal: Writer, request: Request
) -> dict[str, Any]:
    platform = _platform(request)
    _graph(platform, body.graph_id)
    record = AssistantRecord(
        assistant_id=body.assistant_id or "",
        graph_id=body.graph_id,
        name=body.name or "Untitled",
        description=body.description,
        version=1,
        config=body.config or {},
        context=body.context or {},
        metadata=body.metadata or {},
    )
    try:
        created = await asyncio.to_thread(
            platform.assistants.create,
            principal.tenant_id,
            record,
            if_exists=body.if_exists or "raise",
        )
    except (AssistantExists, IntegrityError) as exc:
        raise Conflict("assistant-exists", f"assistant {body.assistant_id!r} exists") from exc
    return created.to_json()


@router.post("/assistants/search")
async def search_assistants(
    principal: Reader, request: Request, body: AssistantSearch | None = None
) -> JSONResponse:
    body = body or AssistantSearch()  # no body: the defaults, as LangGraph's server answers
    found = await asyncio.to_thread(
        _platform(request).assistants.search,
        principal.tenant_id,
        body.filters(),
        limit=body.limit + 1,
        offset=body.offset,
        sort_by=body.sort_by or "created_at",
        descending=(body.sort_order or "desc") == "desc",
    )
    headers = {}
    if len(found) > body.limit:  # LangGraph's cursor for `response_format="object"`
        headers["X-Pagination-Next"] = str(body.offset + body.limit)
    items = [record.to_json() for record in found[: body.limit]]
    if body.select:
        items = [{k: v for k, v in item.items() if k in body.select} for item in items]
    return JSONResponse(items, headers=headers)


@router.post("/assistants/count")
async def count_assistants(
    principal: Reader, request: Request, body: AssistantCount | None = None
) -> int:
    body = body or AssistantCount()
    platform = _platform(request)
    return await asyncio.to_thread(platform.assistants.count, principal.tenant_id, body.filters())


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    return (await _assistant(_platform(request), principal.tenant_id, assistant_id)).to_json()


@router.patch("/assistants/{assistant_id}", responses=answers(409))
async def update_assistant(
    assistant_id: str, body: AssistantPatch, principal: Writer, request: Request
) -> dict[str, Any]:
    """Store a new version (config and context replaced, metadata merged) and use it."""
    platform = _platform(request)
    if body.graph_id is not None:
        _graph(platform, body.graph_id)
    changes = body.model_dump(exclude_unset=True)
    try:
        updated = await asyncio.to_thread(
            platform.assistants.update, principal.tenant_id, assistant_id, changes
        )
    except SystemAssistant as exc:
        raise _system(assistant_id) from exc
    except IntegrityError as exc:  # another update took the same version number
        raise Conflict("assistant-busy", f"assistant {assistant_id!r} changed; retry") from exc
    if updated is None:
        raise NotFound("assistant", assistant_id)
    return updated.to_json()


@router.delete("/assistants/{assistant_id}", status_code=204, responses=answers(409))
async def delete_assistant(
    assistant_id: str,
    principal: Writer,
    request: Request,
    delete_threads: bool = False,
) -> Response:
    """Delete the assistant with all its versions (and, if asked, the threads whose metadata
    names it)."""
    platform = _platform(request)
    try:
        deleted = await asyncio.to_thread(
            platform.assistants.delete, principal.tenant_id, assistant_id
        )
    except SystemAssistant as exc:
        raise _system(assistant_id) from exc
    if not deleted:
        raise NotFound("assistant", assistant_id)
    if delete_threads:
        engine = platform.engine
        while threads := await asyncio.to_thread(
            engine.threads.search,
            principal.tenant_id,
            metadata={"assistant_id": assistant_id},
            limit=100,
        ):
            for thread in threads:
                await engine.delete_thread(principal.tenant_id, thread.id)
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions")
async def assistant_versions(
    assistant_id: str, body: VersionsQuery, principal: Reader, request: Request
) -> list[dict[str, Any]]:
    versions = await asyncio.to_thread(
        _platform(request).assistants.versions,
        principal.tenant_id,
        assistant_id,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
    )
    if versions is None:
        raise NotFound("assistant", assistant_id)
    return [version.to_json(with_updated=False) for version in versions]


@router.post("/assistants/{assistant_id}/latest", responses=answers(409))
async def set_latest_version(
    assistant_id: str, body: SetLatest, principal: Writer, request: Request
) -> dict[str, Any]:
    platform = _platform(request)
    try:
        record = await asyncio.to_thread(
            platform.assistants.set_latest, principal.tenant_id, assistant_id, body.version
        )
    except UnknownVersion as exc:
        raise NotFound("assistant version", f"{assistant_id} v{body.version}") from exc
    except DeployedVersion as exc:
        raise Conflict("deployed-version", str(exc)) from exc
    if record is None:
        raise NotFound("assistant", assistant_id)
    return record.to_json()


@router.get("/assistants/{assistant_id}/graph")
async def get_graph(
    assistant_id: str,
    principal: Reader,
    request: Request,
    xray: Annotated[str, Query(max_length=8, pattern=r"^(true|false|[0-9]{1,3})$")] = "false",
) -> dict[str, list[dict[str, Any]]]:
    """The agent drawn as LangGraph draws a tool-calling agent: a model node, one node per
    declared tool (each returning to the model), start and end."""
    platform = _platform(request)
    record = await _assistant(platform, principal.tenant_id, assistant_id)
    agent = _graph(platform, record.graph_id)
    tools = list(agent.tools) if agent.tools is not None else sorted(platform.engine.app.tools)
    nodes: list[dict[str, Any]] = [
        {"id": "__start__", "type": "schema", "data": "__start__"},
        {"id": "model", "type": "runnable", "data": {"id": ["steward", "model"], "name": "model"}},
    ]
    edges: list[dict[str, Any]] = [{"source": "__start__", "target": "model"}]
    for tool in tools:
        nodes.append(
            {"id": tool, "type": "runnable", "data": {"id": ["steward", "tool"], "name": tool}}
        )
        edges.append({"source": "model", "target": tool, "conditional": True})
        edges.append({"source": tool, "target": "model"})
    nodes.append({"id": "__end__", "type": "schema", "data": "__end__"})
    edges.append({"source": "model", "target": "__end__", "conditional": True})
    return {"nodes": nodes, "edges": edges}


async def _schemas(request: Request, tenant_id: str, assistant_id: str) -> dict[str, Any]:
    platform = _platform(request)
    record = await _assistant(platform, tenant_id, assistant_id)
    described = _graph(platform, record.graph_id).describe()
    return {
        "graph_id": record.graph_id,
        "input_schema": described["input_schema"],
        "output_schema": described["output_schema"],
        "state_schema": described["output_schema"],
        "config_schema": {"type": "object", "title": "Config", "properties": {}},
        "context_schema": {"type": "object", "title": "Context", "properties": {}},
    }


@router.get("/assistants/{assistant_id}/schemas")
async def get_schemas(assistant_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    return await _schemas(request, principal.tenant_id, assistant_id)


@router.get("/assistants/{assistant_id}/subgraphs")
async def get_subgraphs(
    assistant_id: str, principal: Reader, request: Request, recurse: bool = False
) -> dict[str, Any]:
    """A native agent has no subgraphs: an empty map (LangGraph's answer for a flat graph)."""
    await _assistant(_platform(request), principal.tenant_id, assistant_id)
    return {}


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def get_subgraphs_in(
    assistant_id: str, namespace: str, principal: Reader, request: Request, recurse: bool = False
) -> dict[str, Any]:
    await _assistant(_platform(request), principal.tenant_id, assistant_id)
    return {}
