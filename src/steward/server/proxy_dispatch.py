"""The proxy endpoints' short way in: `POST /v1/chat/completions` and `POST /v1/messages` go
straight from the middleware chain to their handlers, past FastAPI's router.

The proxy is the one hot path where FastAPI's work buys nothing: its handlers take the raw
`Request`, parse and check the body themselves and answer in the provider's shape. Matching the
path against every route, the exit-stack middleware and dependency solving were a fifth of the
server's busy time per proxied request in the profile (README, "Gateway"). The routes stay
registered, so the OpenAPI description is unchanged; errors go through the app's own exception
handlers, so a failure answers exactly as it would through the router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from steward.server.routes.proxy import chat_completions, messages

Endpoint = Callable[[Request], Awaitable[Response]]
ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": chat_completions,
    "/v1/messages": messages,
}
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class ProxyDispatch:
    """Innermost middleware: behind authentication, the body guard and idempotency."""

    def __init__(self, app: ASGIApp, endpoints: dict[str, Endpoint] | None = None) -> None:
        self.app = app
        self.endpoints = ENDPOINTS if endpoints is None else endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = _handler_for(scope, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler_for(scope: Scope, exc: Exception) -> ExceptionHandler | None:
    """The app's handler for the exception's nearest class, as Starlette would pick it."""
    handlers: dict[type[Exception], ExceptionHandler] = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
