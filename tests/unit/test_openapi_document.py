"""The API description matches what the server answers: bounded paging everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from steward import Steward
from steward.config import Settings
from steward.server.app import create_app

PAGING = ("limit", "offset")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(), Steward()).openapi()


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _paging_schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every `limit`/`offset` the API takes, in a query or a JSON body, with where it is."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                if parameter["name"] in PAGING:
                    yield f"{where} ?{parameter['name']}", parameter["schema"]
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                body = _resolve(document, media["schema"])
                for name, schema in body.get("properties", {}).items():
                    if name in PAGING:
                        yield f"{where} body.{name}", _resolve(document, schema)


def test_every_limit_and_offset_in_the_api_is_bounded(document: dict[str, Any]) -> None:
    found = dict(_paging_schemas(document))
    assert "GET /threads/{thread_id}/runs ?offset" in found
    assert "POST /threads/search body.offset" in found
    unbounded = {
        where: schema
        for where, schema in found.items()
        if schema.get("type") != "integer" or "minimum" not in schema or "maximum" not in schema
    }
    assert unbounded == {}
