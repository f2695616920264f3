"""Errors in the providers' own shapes for the proxy endpoints, so the official SDKs raise
their usual exceptions (`openai.RateLimitError`, `anthropic.AuthenticationError`, ...).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from starlette.responses import Response

Dialect = Literal["openai", "anthropic"]

PROXY_PATHS: dict[str, Dialect] = {
    "/v1/chat/completions": "openai",
    "/v1/embeddings": "openai",
    "/v1/models": "openai",
    "/v1/messages": "anthropic",
}

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
    504: "timeout",
}
_OPENAI_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def provider_error(
    dialect: Dialect,
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response:
    if dialect == "openai":
        body: dict[str, Any] = {
            "error": {
                "message": message,
                "type": error_type or _OPENAI_TYPES.get(status, "invalid_request_error"),
                "param": None,
                "code": code or _OPENAI_CODES.get(status),
                **(details or {}),
            }
        }
    else:
        error: dict[str, Any] = {
            "type": error_type or _ANTHROPIC_TYPES.get(status, "api_error"),
            "message": message,
        }
        if code or details:
            error["details"] = {**({"error_code": code} if code else {}), **(details or {})}
        body = {"type": "error", "error": error, "request_id": f"req_{uuid.uuid4().hex[:24]}"}
    return Response(
        json.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def proxy_error_for_path(
    path: str, status: int, message: str, headers: dict[str, str] | None = None
) -> Response | None:
    """The provider-shaped answer for a failure on a proxy path, or None elsewhere."""
    dialect = PROXY_PATHS.get(path)
    if dialect is None:
        return None
    # WWW-Authenticate belongs to Steward's own API; providers do not send it.
    kept = {k: v for k, v in (headers or {}).items() if k.lower() != "www-authenticate"}
    return provider_error(dialect, status, message, headers=kept)
