"""`/mcp`: Steward as an MCP server (streamable HTTP, stateless, JSON answers).

Behind the same gate as every route: without a Steward API key (`x-api-key` or `Authorization:
Bearer`) the answer is a 401 before the MCP layer sees the request. What a key may list and call
is decided in `steward.tools.mcp_expose`. Stateless mode keeps no session between requests, so
any API process can answer any request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from steward.app import Steward
from steward.runtime import Runtime
from steward.server.auth import Reader
from steward.tools.mcp_expose import ExposedSteward

router = APIRouter(tags=["mcp"])
PATH = "/mcp"
_JSON_RPC = {"application/json": {"schema": {"type": "object"}}}


class MCPEndpoint:
    """The SDK's session manager for one server process; `run()` spans the app's lifespan."""

    def __init__(self, runtime: Runtime, app: Steward) -> None:
        exposed = ExposedSteward(
            app=app,
            engine=runtime.engine,
            tracing=runtime.tracing,
            secrets=runtime.security.secrets,
        )
        self.manager = StreamableHTTPSessionManager(
            exposed.server(), json_response=True, stateless=True
        )

    def run(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)


class _Delegated(Response):
    """Hands the request to the MCP layer, which writes its own answer."""

    def __init__(self, endpoint: MCPEndpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoint(scope, receive, send)


_ANSWERS: dict[int | str, dict[str, object]] = {
    200: {"description": "A JSON-RPC response", "content": _JSON_RPC},
    202: {"description": "A notification or response was accepted"},
    400: {"description": "Not a valid JSON-RPC message", "content": _JSON_RPC},
    404: {"description": "Unknown MCP session", "content": _JSON_RPC},
    405: {"description": "Method not supported in stateless mode", "content": _JSON_RPC},
    406: {"description": "The Accept header excludes application/json", "content": _JSON_RPC},
    413: {"description": "The body is too large", "content": _JSON_RPC},
    415: {"description": "The body is not application/json", "content": _JSON_RPC},
}


@router.api_route(
    PATH,
    methods=["POST", "GET", "DELETE"],
    response_class=Response,
    responses=_ANSWERS,
    summary="Model Context Protocol (streamable HTTP)",
)
async def mcp(request: Request, principal: Reader) -> Response:
    """Steward's agents (`run_<agent>`) and tools as MCP tools, for the key's tenant. Use an MCP
    client (e.g. the `mcp` SDK's `streamable_http_client`) with the API key as a Bearer token."""
    endpoint: MCPEndpoint = request.app.state.mcp
    return _Delegated(endpoint)


@contextlib.asynccontextmanager
async def serving(runtime: Runtime, app: Steward) -> AsyncIterator[MCPEndpoint]:
    endpoint = MCPEndpoint(runtime, app)
    async with endpoint.run():
        yield endpoint
