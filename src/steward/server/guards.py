"""ASGI middleware that rejects oversized bodies (413) and non-JSON bodies (415) before routing."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.server.problems import problem as problem_json
from steward.server.provider_errors import proxy_error_for_path

_JSON_TYPES = ("application/json",)
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_READ = frozenset({b"content-length", b"content-type", b"transfer-encoding"})


def problem(
    status: int, *, detail: str, instance: str, headers: dict[str, str] | None = None
) -> Response:
    """problem+json, or the provider's error shape on the proxy endpoints."""
    return proxy_error_for_path(instance, status, detail, headers) or problem_json(
        status, detail=detail, instance=instance, headers=headers
    )


def _read_headers(scope: Scope) -> dict[str, str]:
    """Only the three headers the guard reads, not every header of the request."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered in _READ:
            headers[lowered.decode("latin-1")] = value.decode("latin-1")
    return headers


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _read_headers(scope)
        path = scope.get("path", "")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await problem(400, detail="invalid Content-Length", instance=path)(
                    scope, receive, send
                )
                return
            if int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        has_body = declared not in (None, "0") or "transfer-encoding" in headers
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if has_body and not (media_type in _JSON_TYPES or media_type.endswith("+json")):
            await problem(
                415,
                detail="send the body as application/json",
                instance=path,
                headers={"Accept": "application/json"},
            )(scope, receive, send)
            return

        # Read the body here, bounded, so an oversized chunked upload never reaches a route.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(
            413,
            detail=f"the body exceeds {self.max_body_bytes} bytes",
            instance=scope.get("path", ""),
        )(scope, receive, send)
