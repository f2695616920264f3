"""The API description matches what the server answers: every status and media type, and
bounded paging everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from steward import Steward
from steward.config import Settings
from steward.server.app import create_app
from steward.server.provider_errors import PROXY_PATHS

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


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_every_error_answer_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    wrong = {}
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status.isdigit() and int(status) >= 400:
                proxy = path in PROXY_PATHS  # errors in the provider's own shape there
                expected = "application/json" if proxy else "application/problem+json"
                if list(response.get("content", {})) != [expected]:
                    wrong[f"{method.upper()} {path} {status}"] = response.get("content")
    assert wrong == {}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]


def test_answers_of_the_shared_mechanisms_are_documented_on_every_operation(
    document: dict[str, Any],
) -> None:
    runs = document["paths"]["/threads/{thread_id}/runs/wait"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "503"} <= set(
        runs
    )
    health = document["paths"]["/healthz"]["get"]["responses"]
    assert set(health) == {"200", "500", "503"}  # public: no 401, no rate limit


def test_success_statuses_and_media_types_are_the_ones_the_routes_send(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    assert "204" in paths["/threads/{thread_id}"]["delete"]["responses"]
    assert "200" not in paths["/threads/{thread_id}"]["delete"]["responses"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    stream = paths["/runs/stream"]["post"]["responses"]
    assert list(stream["200"]["content"]) == ["text/event-stream"]
    assert "303" in stream  # a retried stream is sent to its run
    cancel = paths["/threads/{thread_id}/runs/{run_id}/cancel"]["post"]["responses"]
    assert {"202", "204"} <= set(cancel) and "200" not in cancel
