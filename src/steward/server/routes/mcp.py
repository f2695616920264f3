"""`/mcp`: Steward as an MCP server (streamable HTTP, stateless, JSON answers).

Behind the same gate as every route: without a Steward API key (`x-api-key` or `Authorization:
Bearer`) the answer is a 401 before the MCP layer sees the request. What a key may list and call
is decided in `steward.tools.mcp_expose`. Stateless mode keeps no session between requests, so
any API process can answer any request (and there is no GET stream or DELETE of a session).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import Message, Receive, Scope, Send

from steward.app import Steward
from steward.errors import ApiError, NotFound
from steward.observe.tracing import Tracing
from steward.runtime import Runtime
from steward.server.auth import Reader
from steward.server.openapi import answers
from steward.server.problems import problem
from steward.tools.mcp_hosting import Supervisor, client
from steward.tools.mcp_tools import SPAN_SERVER

router = APIRouter(tags=["mcp"])
PATH = "/mcp"
_JSON_RPC = {"application/json": {"schema": {"type": "object"}}}


class MCPEndpoint:
    """The SDK's session manager for one server process, started by the first `/mcp` request.

    Loading the MCP SDK costs about 0.7 s of CPU: a server that nobody asks over MCP never pays
    it, and a start-up (or a restart after a crash, recovering runs) never waits for it. The
    import runs in a thread; the manager's task group lives in a task of its own (entered and
    left there, as anyio requires), until `close`."""

    def __init__(self, runtime: Runtime, app: Steward) -> None:
        self._runtime = runtime
        self._app = app
        self.hosting = Supervisor(runtime.settings.home / "mcp")
        self.hosting.on_healthy.append(app.remote.hosted_ready)
        self._manager: Any = None
        self._failure: BaseException | None = None
        self._serving: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()

    async def _started(self) -> Any:
        if self._serving is None:  # no await since the check: one task, however many callers
            self._serving = asyncio.create_task(self._serve(), context=contextvars.Context())
        await self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self._manager

    async def _serve(self) -> None:
        try:
            await asyncio.to_thread(importlib.import_module, "steward.tools.mcp_expose")
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

            from steward.tools.mcp_expose import ExposedSteward

            runtime = self._runtime
            exposed = ExposedSteward(
                app=self._app,
                engine=runtime.engine,
                tracing=runtime.tracing,
                secrets=runtime.security.secrets,
            )
            manager = StreamableHTTPSessionManager(
                exposed.server(),
                json_response=True,
                stateless=True,
                # The body guard in front already bounds it; the SDK's own limit never binds.
                max_request_body_size=runtime.settings.max_body_bytes + 1,
            )
        except Exception as exc:
            self._failure = exc
            self._ready.set()
            raise
        async with manager.run():
            self._manager = manager
            self._ready.set()
            await self._stop.wait()

    async def close(self) -> None:
        self._stop.set()
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = await self._started()
        await manager.handle_request(scope, receive, send)


class _Delegated(Response):
    """Hands the request to the MCP layer, which writes its own answer; an HTTP-level refusal
    of the SDK's (wrong media type, not acceptable, too large, bad JSON) leaves as problem+json
    like every other 4xx of Steward, with the SDK's message as its detail."""

    def __init__(self, endpoint: MCPEndpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        failed: Message | None = None
        body = bytearray()

        async def relay(message: Message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start" and message["status"] >= 400:
                failed = message
                return
            if failed is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                answer = problem(failed["status"], None, None, _detail(bytes(body)), instance=PATH)
                await answer(scope, receive, send)

        await self.endpoint(scope, receive, relay)


def _detail(body: bytes) -> str:
    """The JSON-RPC error's message, or the SDK's plain-text reason."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500] or "refused by the MCP transport"
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or data)[:500]


_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "A JSON-RPC response", "content": _JSON_RPC},
    202: {"description": "A notification or response was accepted"},
    **answers(406),
}


@router.post(
    PATH,
    response_class=Response,
    responses=_ANSWERS,
    summary="Model Context Protocol (streamable HTTP)",
)
async def mcp(request: Request, principal: Reader) -> Response:
    """Steward's agents (`run_<agent>`) and tools as MCP tools, for the key's tenant. Use an MCP
    client (e.g. the `mcp` SDK's `streamable_http_client`) with the API key as a Bearer token."""
    endpoint: MCPEndpoint = request.app.state.mcp
    return _Delegated(endpoint)


@router.post(
    PATH + "/{name}",
    response_class=Response,
    responses={**_ANSWERS, **answers(404, 503)},
    summary="A hosted MCP server (streamable HTTP)",
)
async def hosted_mcp(name: str, request: Request, principal: Reader) -> Response:
    """A server deployed with `steward mcp deploy`, for keys of its tenant; each `tools/call`
    is traced as an `execute_tool <name>__<tool>` span."""
    import httpx

    endpoint: MCPEndpoint = request.app.state.mcp
    server = endpoint.hosting.get(name)
    if server is None or server.deployment.tenant != principal.tenant_id:
        raise NotFound("hosted MCP server", name)
    if not server.healthy:
        raise _unavailable(name)
    body = await request.body()
    forward = {k: v for k, v in request.headers.items() if k in _FORWARDED}
    tool = _called_tool(body)
    tracing: Tracing = request.app.state.tracing
    spanned = (
        tracing.execute_tool(f"{name}__{tool}", f"mcp_{uuid.uuid4().hex}", step=0)
        if tool is not None
        else contextlib.nullcontext()
    )
    try:
        with spanned as span:
            if span is not None:
                span.set_attribute(SPAN_SERVER, name)
            async with client(server.socket, timeout=HOSTED_TIMEOUT_S) as http:
                answer = await http.post(PATH, content=body, headers=forward)
    except httpx.HTTPError as exc:
        raise _unavailable(name) from exc
    if answer.status_code >= 400:
        return problem(
            answer.status_code, None, None, _detail(answer.content), instance=request.url.path
        )
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
    )


HOSTED_TIMEOUT_S = 300.0
_FORWARDED = frozenset({"content-type", "accept", "mcp-protocol-version"})


def _unavailable(name: str) -> ApiError:
    return ApiError(
        503,
        "mcp-server-unavailable",
        "MCP server unavailable",
        f"hosted MCP server {name!r} is starting or restarting; retry shortly",
        headers={"Retry-After": "2"},
    )


def _called_tool(body: bytes) -> str | None:
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("method") == "tools/call":
        params = message.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        return str(tool)[:64] if tool else None
    return None


@contextlib.asynccontextmanager
async def serving(runtime: Runtime, app: Steward) -> AsyncIterator[MCPEndpoint]:
    """`/mcp` and the hosted servers of `<home>/mcp`, for the app's lifespan."""
    endpoint = MCPEndpoint(runtime, app)
    await endpoint.hosting.start()
    try:
        yield endpoint
    finally:
        await endpoint.hosting.stop()
        await endpoint.close()
