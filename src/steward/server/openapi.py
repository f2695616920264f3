"""The OpenAPI document describes every answer, not only the happy one.

FastAPI documents a route's own success and a 422 `HTTPValidationError` it never sends. The
answers that the shared mechanisms give (authentication, the body guard, idempotency, request
validation, the database outage guard, the catch-all handler) are added here to every operation
they cover, with the problem+json schema that `steward.server.problems` writes (or the
provider's error shape on the proxy endpoints). Route-specific answers (a 404 for an unknown
assistant, a stream, a 204) are declared on the route, with `answers()` for errors.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from steward.server.auth import HOOKS_PREFIX, PUBLIC_PATHS
from steward.server.idempotency import MUTATING
from steward.server.problems import TITLES
from steward.server.provider_errors import PROXY_PATHS

PROBLEM_JSON = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROVIDER_ERROR_REF = {"$ref": "#/components/schemas/ProviderError"}
_BODY_METHODS = {"post", "put", "patch"}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `type` is stable per kind of error.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object"},
            "description": "What failed validation (422).",
        },
    },
    "additionalProperties": True,
}
PROVIDER_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ProviderError",
    "description": "An error in the provider's own shape (OpenAI's or Anthropic's), so the "
    "official SDKs raise their usual exceptions.",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object"}, "type": {"type": "string"}},
    "additionalProperties": True,
}
# Statuses the proxy passes on from a provider (after the gateway's retries and fallbacks).
_PROVIDER_STATUSES = (402, 404, 408, 409, 429, 500, 502, 503, 504, 529)


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's own error answers; their schema is filled in by `install`."""
    return {status: {"description": _title(status)} for status in statuses}


def event_stream(description: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose success is Server-Sent Events."""
    return {
        200: {
            "description": description,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }


def _title(status: int) -> str:
    return TITLES.get(status, ("error", "Error"))[1]


def _mechanism_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """What the shared machinery in front of every route can answer for this operation."""
    statuses = {500, 503}  # the catch-all handler; the database outage guard
    public = path in PUBLIC_PATHS or path.startswith(HOOKS_PREFIX)
    if not public:
        statuses |= {401, 403, 429}  # AuthGate: key or JWT, role, rate limits
    if method in _BODY_METHODS:
        statuses |= {400, 413, 415}  # RequestGuard: malformed or unportable JSON, size, type
    if method.upper() in MUTATING and not public:
        statuses |= {400, 409, 413, 422}  # IdempotencyGate: bad key, in use, reused
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)  # request validation
    if "{" in path:
        statuses.add(404)  # the named resource does not exist (or is another tenant's)
    if path in PROXY_PATHS:
        statuses |= set(_PROVIDER_STATUSES)
    return statuses


def _describe_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    error_ref = _PROVIDER_ERROR_REF if path in PROXY_PATHS else _PROBLEM_REF
    media_type = "application/json" if path in PROXY_PATHS else PROBLEM_JSON
    for status in sorted(declared | _mechanism_statuses(path, method, operation)):
        entry = responses.setdefault(str(status), {"description": _title(status)})
        entry["content"] = {media_type: {"schema": error_ref}}
    if any(_streams(entry) for entry in responses.values()) and method.upper() in MUTATING:
        # A retried stream is not replayed: IdempotencyGate sends the client to its run.
        responses.setdefault("303", {"description": "See the run this request started"})
    operation["responses"] = dict(sorted(responses.items()))


def _streams(entry: dict[str, Any]) -> bool:
    return "text/event-stream" in entry.get("content", {})


def _refers_to(value: Any, names: tuple[str, ...]) -> bool:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in names:
            return True
        return any(_refers_to(item, names) for item in value.values())
    if isinstance(value, list):
        return any(_refers_to(item, names) for item in value)
    return False


def describe_answers(document: dict[str, Any]) -> dict[str, Any]:
    """Add every mechanism's answers to `document` (FastAPI's), in place."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _describe_errors(path, method, operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    if any(path in PROXY_PATHS for path in document.get("paths", {})):
        schemas["ProviderError"] = PROVIDER_ERROR_SCHEMA
    if not _refers_to(document.get("paths", {}), _FASTAPI_VALIDATION):
        for name in _FASTAPI_VALIDATION:
            schemas.pop(name, None)
    return document


def install(api: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""
    build = api.openapi

    def document() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = describe_answers(build())
        return api.openapi_schema

    api.openapi = document  # type: ignore[method-assign]
