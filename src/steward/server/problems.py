"""RFC 9457 problem details: every error Steward answers over HTTP, with a stable `type`."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from steward.errors import ApiError, UserError
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


def install_problem_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return problem(
            exc.status,
            exc.kind,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem(
            exc.status_code,
            detail=str(exc.detail),
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    async def request_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(
                400,
                "malformed-json",
                "Malformed JSON",
                "the body is not valid JSON",
                instance=request.url.path,
            )
        return problem(
            422,
            detail="the request does not match the schema",
            instance=request.url.path,
            errors=_validation_errors(errors),
        )

    async def input_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError)
        return problem(
            422,
            "invalid-input",
            "Invalid agent input",
            "the input does not match the agent's input model",
            instance=request.url.path,
            errors=_validation_errors(exc.errors()),
        )

    async def user_error(request: Request, exc: Exception) -> Response:
        return problem(422, "invalid-request", detail=str(exc), instance=request.url.path)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, instance=request.url.path)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return database_unavailable_response(request.url.path)

    app.add_exception_handler(ApiError, api_error)
    # Connection failures only: other database errors are bugs and stay 500s.
    for unreachable in DATABASE_UNREACHABLE:
        app.add_exception_handler(unreachable, database_unavailable)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(ValidationError, input_invalid)
    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(Exception, unexpected)
