"""Store endpoints (LangGraph Platform's): the tenant's long-term JSON documents."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from steward.errors import NotFound, UserError
from steward.runs.platform import Platform
from steward.server.auth import Reader, Writer
from steward.server.pagination import DEFAULT_LIMIT, MAX_LIMIT, Limit, Offset
from steward.server.schemas import _bounded_depth
from steward.store.items import SEPARATOR, InvalidNamespace, validate_key, validate_namespace

router = APIRouter(tags=["store"])
MAX_PATH = 1000  # the stored namespace path and key, in characters (and in UTF-8 bytes)
Key = Annotated[str, Field(min_length=1, max_length=MAX_PATH), AfterValidator(validate_key)]
Labels = Annotated[list[str], Field(max_length=64)]
# TTLs are minutes, as LangGraph's; at most ten years.
Ttl = Annotated[float, Field(gt=0, le=5_256_000)]


def _checked(labels: list[str], *, allow_empty: bool = False) -> list[str]:
    validate_namespace(labels, allow_empty=allow_empty)
    return labels


def _namespace(labels: list[str]) -> list[str]:
    return _checked(labels)


def _prefix(labels: list[str] | None) -> list[str] | None:
    return None if labels is None else _checked(labels, allow_empty=True)


def _pattern(labels: list[str] | None) -> list[str] | None:
    """Prefix or suffix of `/store/namespaces`: labels, where `*` matches any one label."""
    if labels is not None:
        _checked([label.replace("*", "any") for label in labels], allow_empty=True)
    return labels


class PutItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace: Labels
    key: Key
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: Ttl | None = None

    _labels = field_validator("namespace")(_namespace)
    _bounded = field_validator("value")(_bounded_depth)


class DeleteItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace: Labels
    key: Key

    _labels = field_validator("namespace")(_namespace)


class SearchItems(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace_prefix: Labels = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0
    query: str | None = Field(default=None, max_length=10_000)
    refresh_ttl: bool | None = None

    _labels = field_validator("namespace_prefix")(_prefix)
    _bounded = field_validator("filter")(_bounded_depth)


class ListNamespaces(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prefix: Labels | None = None
    suffix: Labels | None = None
    max_depth: int | None = Field(default=None, ge=1, le=64)
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 100
    offset: Offset = 0

    _labels = field_validator("prefix", "suffix")(_pattern)


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


@router.put("/store/items", status_code=204, response_class=Response)
async def put_item(body: PutItem, principal: Writer, request: Request) -> Response:
    """Store (or replace) a document; `ttl` in minutes."""
    await asyncio.to_thread(
        _platform(request).items.put,
        principal.tenant_id,
        body.namespace,
        body.key,
        body.value,
        ttl_minutes=body.ttl,
    )
    return Response(status_code=204)


@router.get("/store/items", responses={404: {"description": "No such item"}})
async def get_item(
    principal: Reader,
    request: Request,
    key: Annotated[str, Query(min_length=1, max_length=MAX_PATH)],
    namespace: Annotated[str, Query(max_length=MAX_PATH)] = "",
    refresh_ttl: bool = True,
) -> dict[str, Any]:
    """One document; `namespace` is its labels joined by '.'."""
    labels = namespace.split(SEPARATOR) if namespace else []
    try:
        validate_namespace(labels)
        validate_key(key)
    except InvalidNamespace as exc:
        raise UserError(str(exc)) from exc
    item = await asyncio.to_thread(
        _platform(request).items.get, principal.tenant_id, labels, key, refresh_ttl=refresh_ttl
    )
    if item is None:
        raise NotFound("item", f"{namespace}/{key}")
    return item.to_json()


@router.delete("/store/items", status_code=204, response_class=Response)
async def delete_item(body: DeleteItem, principal: Writer, request: Request) -> Response:
    await asyncio.to_thread(
        _platform(request).items.delete, principal.tenant_id, body.namespace, body.key
    )
    return Response(status_code=204)


@router.post("/store/items/search")
async def search_items(
    body: SearchItems, principal: Reader, request: Request
) -> dict[str, list[dict[str, Any]]]:
    """Documents under a namespace prefix, newest update first, meeting `filter` (each key
    equal, or `{"$gt"|"$gte"|"$lt"|"$lte"|"$eq"|"$ne": value}`)."""
    platform = _platform(request)
    items = await asyncio.to_thread(
        platform.items.search,
        principal.tenant_id,
        body.namespace_prefix,
        filter=body.filter,
        query=body.query,
        limit=body.limit,
        offset=body.offset,
        refresh_ttl=body.refresh_ttl is not False,
    )
    scored = body.query is not None and platform.items.index is not None
    return {"items": [item.to_json(with_score=scored) for item in items]}


@router.post("/store/namespaces")
async def list_namespaces(
    body: ListNamespaces, principal: Reader, request: Request
) -> dict[str, list[list[str]]]:
    found = await asyncio.to_thread(
        _platform(request).items.namespaces,
        principal.tenant_id,
        prefix=body.prefix,
        suffix=body.suffix,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return {"namespaces": [list(labels) for labels in found]}
