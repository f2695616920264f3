"""One live connection to a remote MCP server, over streamable HTTP or stdio (official `mcp` SDK).

The SDK's transports and `ClientSession` are async context managers whose task groups must be
entered and left by one task, so each connection holds them open in a task of its own; calls
from any run's task go through the session's memory streams. A connection that breaks (the
server process died, the HTTP session ended) is dropped and opened again by the next call.

What a hostile server can do is bounded here: an HTTP body (JSON or one SSE event) or a stdio
message larger than `max_response_bytes` is cut off and answered as an error, and every request
has the SDK's read timeout as a backstop to the tool runner's own `timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

import httpx2
from mcp import ClientSession, MCPError, types
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED, RequestParamsMeta

from steward.tools.mcp_spec import MCPServerSpec
from steward.tools.mcp_stdio import bounded_stdio

log = logging.getLogger(__name__)

T = TypeVar("T")
OnToolsChanged = Callable[[], Coroutine[Any, Any, None]]


class ResponseTooLarge(httpx2.StreamError):
    """An MCP server's HTTP body passed `max_response_bytes`."""


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._limit:
                raise ResponseTooLarge(f"the MCP server's response exceeds {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedTransport(httpx2.AsyncBaseTransport):
    """Cuts off any response body longer than `limit` bytes, before it is buffered."""

    def __init__(self, limit: int, uds: str | None = None) -> None:
        self._inner = httpx2.AsyncHTTPTransport(uds=uds)
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self._limit),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class MCPConnection:
    """A session to one server for one credential; opened on first use, reopened when broken."""

    def __init__(
        self,
        spec: MCPServerSpec,
        token: str | None,
        on_tools_changed: OnToolsChanged,
        socket: Callable[[], str] | None = None,
        auth: httpx2.Auth | None = None,
    ) -> None:
        self.spec = spec
        self._token = token
        self._auth = auth  # OAuth: a token per request, refreshed on a 401
        self._socket = socket  # a hosted server's Unix socket, looked up at each connect
        self._on_tools_changed = on_tools_changed
        self._session: ClientSession | None = None
        self._holder: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    async def session(self) -> ClientSession:
        async with self._lock:
            if self._session is not None and self._holder is not None and not self._holder.done():
                return self._session
            await self._drop()
            self._closing = asyncio.Event()
            ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
            self._holder = asyncio.create_task(self._hold(ready), name=f"mcp {self.spec.name}")
            try:
                async with asyncio.timeout(self.spec.connect_timeout_s):
                    self._session = await asyncio.shield(ready)
            except BaseException:
                await self._drop()
                raise
            return self._session

    async def list_tools(self) -> list[types.Tool]:
        session = await self.session()
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await self._guard(session.list_tools(params=params))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor or len(tools) > 10_000:
                return tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], meta: dict[str, Any]
    ) -> types.CallToolResult:
        session = await self.session()
        result = await self._guard(
            session.call_tool(
                name,
                arguments,
                read_timeout_seconds=self.spec.timeout_s,
                meta=cast(RequestParamsMeta, meta),
            )
        )
        assert isinstance(result, types.CallToolResult)
        return result

    async def _guard(self, request: Awaitable[T]) -> T:
        """A request; a broken connection is dropped so the next call reconnects."""
        try:
            return await request
        except (OSError, EOFError, BrokenPipeError) as exc:
            await self.close()
            raise ConnectionError(f"MCP server {self.spec.name!r}: {exc}") from exc
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise
            await self.close()  # e.g. a stdio server that exited: the next call starts it again
            raise ConnectionError(f"MCP server {self.spec.name!r}: connection closed") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("anyio"):  # closed or broken streams
                await self.close()
                raise ConnectionError(f"MCP server {self.spec.name!r} went away") from exc
            raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        self._session = None
        holder, self._holder = self._holder, None
        if holder is None:
            return
        self._closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(holder), 10)
        except TimeoutError:
            holder.cancel()
            with contextlib.suppress(BaseException):
                await holder
        except BaseException:  # the holder's own failure was reported to its caller
            log.debug("MCP connection %s ended with an error", self.spec.name, exc_info=True)

    async def _hold(self, ready: asyncio.Future[ClientSession]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(stack))
                session = await stack.enter_async_context(
                    ClientSession(
                        read,
                        write,
                        # Starting a server (initialize) may take longer than a call may.
                        read_timeout_seconds=max(self.spec.timeout_s, self.spec.connect_timeout_s),
                        message_handler=self._on_message,
                    )
                )
                await session.initialize()
                ready.set_result(session)
                await self._closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError(exc))
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s: connection ended: %r", self.spec.name, exc)
        finally:
            self._session = None

    def _transport(
        self, stack: contextlib.AsyncExitStack
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        spec = self.spec
        if spec.command is not None:
            return bounded_stdio(spec.command, spec.args, dict(spec.env), spec.max_response_bytes)
        headers = dict(spec.headers)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        client = httpx2.AsyncClient(
            headers=headers,
            auth=self._auth,
            timeout=httpx2.Timeout(spec.connect_timeout_s, read=spec.timeout_s + 5),
            transport=_CappedTransport(
                spec.max_response_bytes, uds=self._socket() if self._socket else None
            ),
        )
        stack.push_async_callback(client.aclose)
        url = spec.url or "http://hosted/mcp"
        return streamable_http_client(
            url, http_client=client, max_sse_event_size=spec.max_response_bytes
        )

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            # Imported again outside the session's own task: listing needs the session free.
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
                self._on_tools_changed()
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(message, Exception):
            log.warning("MCP server %s: transport error: %r", self.spec.name, message)
