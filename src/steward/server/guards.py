"""ASGI middleware that rejects, before routing, oversized bodies (413), non-JSON bodies (415)
and JSON that no store or response can carry (400: non-finite numbers, lone surrogates)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.server.headers import pick_headers
from steward.server.json_body import unportable_reason
from steward.server.problems import problem as problem_json
from steward.server.provider_errors import proxy_error_for_path

_JSON_TYPES = ("application/json",)
# The dashboard's forms post urlencoded bodies; only under its prefix.
_FORM_TYPE = "application/x-www-form-urlencoded"
_UI_PREFIX = "/ui/"
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_READ = frozenset({b"content-length", b"content-type", b"transfer-encoding"})


def problem(
    status: int,
    *,
    detail: str,
    instance: str,
    headers: dict[str, str] | None = None,
    kind: str | None = None,
    title: str | None = None,
) -> Response:
    """problem+json, or the provider's error shape on the proxy endpoints."""
    return proxy_error_for_path(instance, status, detail, headers) or problem_json(
        status, kind, title, detail, instance=instance, headers=headers
    )


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        refusal = self._refuse_headers(scope, path)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        body = await self._read_body(receive, path)
        if body is None:
            return  # the client went away
        if isinstance(body, Response):
            await body(scope, receive, send)
            return
        reason = None if path.startswith(_UI_PREFIX) else unportable_reason(body)
        if reason is not None:
            refused = problem(
                400, kind="invalid-json", title="Invalid JSON", detail=reason, instance=path
            )
            await refused(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refuse_headers(self, scope: Scope, path: str) -> Response | None:
        """400/413/415 from the headers alone, before a byte of the body is read."""
        headers = pick_headers(scope, _READ)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return problem(400, detail="invalid Content-Length", instance=path)
            if int(declared) > self.max_body_bytes:
                return self._too_large(path)
        has_body = declared not in (None, "0") or "transfer-encoding" in headers
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        form = media_type == _FORM_TYPE and path.startswith(_UI_PREFIX)
        if has_body and not (media_type in _JSON_TYPES or media_type.endswith("+json") or form):
            return problem(
                415,
                detail="send the body as application/json",
                instance=path,
                headers={"Accept": "application/json"},
            )
        return None

    async def _read_body(self, receive: Receive, path: str) -> bytes | Response | None:
        """The whole body, read here and bounded so an oversized chunked upload never reaches
        a route; a 413 answer when it is too large; None when the client went away."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                return self._too_large(path)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, path: str) -> Response:
        return problem(413, detail=f"the body exceeds {self.max_body_bytes} bytes", instance=path)
