"""RFC 9457 problem details: every error Steward answers over HTTP, with a stable `type`."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from steward.errors import (
    ApiError,
    ConfigError,
    InvalidInput,
    SandboxBackendRefused,
    SandboxError,
    SandboxPathRefused,
    SandboxStateError,
    SandboxUnavailable,
    UnknownModel,
    UserError,
)
from steward.server.provider_errors import proxy_error_for_path
from steward.store.outage import DATABASE_UNREACHABLE

TYPE_BASE = "https://steward.dev/problems/"
DATABASE_RETRY_AFTER_S = 2
log = logging.getLogger("steward.server")

TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid input"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


def problem(
    status: int,
    kind: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    default_kind, default_title = TITLES.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": TYPE_BASE + (kind or default_kind),
        "title": title or default_title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(
        json.dumps(body, default=str),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def database_unavailable_response(path: str) -> Response:
    return problem(
        503,
        detail="the database is unreachable; retry shortly",
        instance=path,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def _validation_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors
    ]


# The status of each error family: a caller's mistake is a 4xx, the server's a 5xx. The most
# specific class wins (handlers are looked up along the exception's MRO).
_FAMILIES: dict[type[Exception], tuple[int, str, str]] = {
    SandboxPathRefused: (400, "sandbox-path-refused", "Path refused"),
    SandboxStateError: (409, "sandbox-state", "Sandbox cannot do that now"),
    SandboxBackendRefused: (422, "sandbox-backend-refused", "Sandbox backend not offered"),
    SandboxUnavailable: (503, "sandbox-unavailable", "Sandbox backend unavailable"),
    SandboxError: (500, "sandbox-error", "Sandbox failure"),
    UnknownModel: (422, "unknown-model", "Unknown model"),
    ConfigError: (500, "server-misconfigured", "Server misconfigured"),
    UserError: (422, "invalid-request", "Invalid input"),
}


def _family(exc: Exception) -> tuple[int, str, str]:
    for cls in type(exc).__mro__:
        if cls in _FAMILIES:
            return _FAMILIES[cls]
    return 500, "internal-error", "Internal server error"


def _answer(
    request: Request,
    status: int,
    kind: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """problem+json, or the provider's error shape on the proxy endpoints."""
    path = request.url.path
    provider_shaped = proxy_error_for_path(path, status, detail or title or "error", headers)
    return provider_shaped or problem(
        status, kind, title, detail, instance=path, headers=headers, **extra
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _answer(
            request, exc.status, exc.kind, exc.title, exc.detail, headers=exc.headers, **exc.extra
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _answer(
            request, exc.status_code, detail=str(exc.detail), headers=dict(exc.headers or {})
        )

    async def request_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return _answer(
                request, 400, "malformed-json", "Malformed JSON", "the body is not valid JSON"
            )
        return _answer(
            request,
            422,
            detail="the request does not match the schema",
            errors=_validation_errors(errors),
        )

    async def input_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidInput)
        return _answer(
            request,
            422,
            "invalid-input",
            "Invalid agent input",
            "the input does not match the agent's input model",
            errors=_validation_errors(exc.errors),
        )

    async def steward_error(request: Request, exc: Exception) -> Response:
        status, kind, title = _family(exc)
        if status >= 500:
            # The server's fault: logged in full, and not explained to the caller (a missing
            # provider key's name is the operator's business).
            log.error("%s on %s %s: %s", title, request.method, request.url.path, exc, exc_info=exc)
            detail = str(exc) if status == 503 else "see the server's log"
            return _answer(request, status, kind, title, detail)
        return _answer(request, status, kind, title, str(exc))

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Also pydantic's ValidationError: raised by our own code, it is a bug, not bad input
        # (request bodies fail as RequestValidationError, run input as InvalidInput).
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _answer(request, 500)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return database_unavailable_response(request.url.path)

    app.add_exception_handler(ApiError, api_error)
    # Connection failures only: other database errors are bugs and stay 500s.
    for unreachable in DATABASE_UNREACHABLE:
        app.add_exception_handler(unreachable, database_unavailable)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(InvalidInput, input_invalid)
    for family in _FAMILIES:
        app.add_exception_handler(family, steward_error)
    app.add_exception_handler(Exception, unexpected)
