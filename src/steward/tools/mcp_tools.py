"""Remote MCP servers' tools as Steward tools: imported at start and on `tools/list_changed`.

```python
app.add_mcp_server("crm", url="https://crm.example/mcp", token_secret="CRM_TOKEN")
app.add_mcp_server("files", command="python", args=("files_server.py",))

@app.agent(tools=["crm", "lookup_order"])  # a server's name allows all of its tools
```

Each remote tool becomes a `SchemaTool` named `<server>__<tool>`, so it goes through the same
path as any tool: argument validation against its schema, the policy's decision (allowlist,
taint gate, approvals), the tool runner's timeout, retries and breaker, an `execute_tool` span
and a journaled step. Annotations map onto permissions: only `readOnlyHint: true` (and not
also `destructiveHint: true`) makes a tool read-only; anything else, silence included, writes.
Results are never trusted by the policy (they taint the run), are cut to `max_result_bytes`,
and a server's descriptions and schemas are bounded and checked before the model sees them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from steward.errors import ToolError, UserError
from steward.security.secrets import SecretStore
from steward.tools.mcp_hosting import SOCKET, read_registry
from steward.tools.mcp_spec import MCPServerSpec
from steward.tools.oauth import OAuthError, TokenSource
from steward.tools.registry import Tool, ToolContext
from steward.tools.resilience import ToolResilience
from steward.tools.schema_tools import SchemaTool, check_input_schema, make_schema_tool

if TYPE_CHECKING:  # the MCP SDK is loaded on first connection, not when an app is declared
    from mcp import types

    from steward.tools.mcp_client import MCPConnection

log = logging.getLogger(__name__)

SEPARATOR = "__"
MAX_DESCRIPTION_CHARS = 1_024
MAX_SCHEMA_BYTES = 32_000
IMPORT_RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
IDEMPOTENCY_META = "steward/idempotency_key"
SPAN_SERVER = "steward.mcp.server"
SPAN_TRANSPORT = "steward.mcp.transport"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class MCPServerFailed(Exception):
    """The server answered a call with a protocol error, a broken result or too much data:
    a failure of the call (counted by the tool's breaker), unlike a result with `isError`."""


def steward_name(server: str, tool: str) -> str:
    return (server + SEPARATOR + _UNSAFE.sub("_", tool))[:64]


class RemoteTools:
    """The MCP servers an app declared; imports their tools into the app's registry."""

    def __init__(self, registry: dict[str, Tool]) -> None:
        self.specs: dict[str, MCPServerSpec] = {}
        self._registry = registry
        self._connections: dict[tuple[str, str | None], MCPConnection] = {}
        self._tokens: dict[tuple[str, str], TokenSource] = {}
        self._secrets: SecretStore | None = None
        self._retrying: set[asyncio.Task[None]] = set()
        self.hosted_root: Path | None = None
        """Where `steward mcp deploy` keeps deployments (`<home>/mcp`), for `hosted=` servers."""
        self.imported: dict[str, list[str]] = {}
        """Steward names of each server's tools, as last imported."""

    def add(self, spec: MCPServerSpec) -> None:
        if spec.name in self.specs or spec.name in self._registry:
            raise UserError(f"MCP server {spec.name!r} is declared twice (or names a tool)")
        self.specs[spec.name] = spec

    def tools_of(self, server: str) -> dict[str, Tool]:
        return {name: self._registry[name] for name in self.imported.get(server, ())}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, secrets: SecretStore | None, hosted_root: Path | None = None) -> None:
        """Import every server's tools; one that cannot be reached is retried in the background
        (its tools are missing until then, and calls that name them are refused)."""
        self._secrets = secrets
        self.hosted_root = hosted_root
        results = await asyncio.gather(
            *(self.refresh(name) for name in self.specs), return_exceptions=True
        )
        for name, result in zip(self.specs, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("MCP server %s: tools not imported yet: %r", name, result)
                task = asyncio.create_task(self._retry_import(name))
                self._retrying.add(task)
                task.add_done_callback(self._retrying.discard)

    async def stop(self) -> None:
        for task in list(self._retrying):
            task.cancel()
        await asyncio.gather(*self._retrying, return_exceptions=True)
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    async def hosted_ready(self, deployment: str) -> None:
        """A hosted deployment became healthy: import the servers that use it now, rather
        than at their next retry."""
        for spec in self.specs.values():
            if spec.hosted == deployment:
                for key in [k for k in self._connections if k[0] == spec.name]:
                    await self._connections.pop(key).close()  # a new version has a new socket
                try:
                    await self.refresh(spec.name)
                except Exception as exc:
                    log.warning("MCP server %s: import failed: %r", spec.name, exc)

    async def _retry_import(self, server: str) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(IMPORT_RETRY_S[min(attempt, len(IMPORT_RETRY_S) - 1)])
            attempt += 1
            try:
                await self.refresh(server)
                return
            except Exception as exc:
                log.warning("MCP server %s: import failed again: %r", server, exc)

    # -- import -------------------------------------------------------------------------------

    async def refresh(self, server: str) -> list[str]:
        """(Re)import a server's tools; the names now registered."""
        spec = self.specs[server]
        tenant = spec.tenant or "default"
        if spec.oauth is not None:
            await self._token_source(spec, tenant).token()  # a refused credential fails here
        connection = await self._connection(spec, tenant)
        listed = await asyncio.wait_for(connection.list_tools(), spec.connect_timeout_s)
        tools: dict[str, SchemaTool] = {}
        for remote in listed:
            tool = self._convert(spec, remote)
            if tool is not None and tool.name not in tools:
                tools[tool.name] = tool
        for old in self.imported.get(server, []):
            self._registry.pop(old, None)
        for name, tool in tools.items():
            existing = self._registry.get(name)
            if existing is not None and getattr(existing, "source", None) != f"mcp:{server}":
                log.warning("MCP server %s: tool %s clashes with an app tool", server, name)
                continue
            self._registry[name] = tool
        self.imported[server] = [n for n in tools if self._registry.get(n) is tools[n]]
        log.info("MCP server %s: %d tools imported", server, len(self.imported[server]))
        return self.imported[server]

    def _convert(self, spec: MCPServerSpec, remote: types.Tool) -> SchemaTool | None:
        """A Steward tool for a listed MCP tool, or None for one whose listing cannot be used."""
        name = steward_name(spec.name, remote.name)
        try:
            if len(json.dumps(remote.input_schema)) > MAX_SCHEMA_BYTES:
                raise UserError(f"its input schema is over {MAX_SCHEMA_BYTES} bytes")
            schema = check_input_schema(name, remote.input_schema)
        except (UserError, TypeError, ValueError) as exc:
            log.warning("MCP server %s: tool %r skipped: %s", spec.name, remote.name, exc)
            return None
        hints = remote.annotations
        read_only = hints is not None and (
            hints.read_only_hint is True and hints.destructive_hint is not True
        )
        # The MCP default for a tool that is not read-only is destructive.
        destructive = not read_only and (hints is None or hints.destructive_hint is not False)
        idempotent = read_only or (hints is not None and hints.idempotent_hint is True)
        description = (remote.description or remote.title or remote.name)[:MAX_DESCRIPTION_CHARS]
        return make_schema_tool(
            name=name,
            description=description,
            input_schema=schema,
            handler=self._handler(spec, remote.name),
            writes=not read_only,
            needs_approval=spec.approve_destructive and destructive,
            resilience=ToolResilience(
                timeout_s=spec.timeout_s,
                # Only a call that cannot do harm twice is tried again after a lost connection.
                retries=1 if idempotent else 0,
                retry_on=(ConnectionError,),
                breaker_failures=spec.breaker_failures,
            ),
            source=f"mcp:{spec.name}",
            tenant=spec.tenant,
        )

    # -- calls --------------------------------------------------------------------------------

    def _handler(
        self, spec: MCPServerSpec, remote_name: str
    ) -> Callable[[dict[str, Any], ToolContext], Any]:
        async def call(arguments: dict[str, Any], ctx: ToolContext) -> Any:
            from mcp import MCPError

            if spec.tenant is not None and ctx.tenant_id != spec.tenant:
                raise ToolError(f"MCP server {spec.name!r} is not available to this tenant")
            span = trace.get_current_span()
            span.set_attribute(SPAN_SERVER, spec.name)
            span.set_attribute(SPAN_TRANSPORT, spec.transport)
            source = None
            if spec.oauth is not None:
                source = self._token_source(spec, ctx.tenant_id)
                try:
                    await source.token()
                except OAuthError as exc:  # the token endpoint's refusal: the model's tool error
                    raise ToolError(str(exc)) from exc  # (journaled steps replay `ToolError`s)
            connection = await self._connection(spec, ctx.tenant_id)
            meta = {IDEMPOTENCY_META: ctx.idempotency_key, "steward/run_id": ctx.run_id}
            try:
                result = await connection.call_tool(remote_name, arguments, meta)
            except Exception as exc:
                if source is not None and source.failure is not None:
                    # A 401 whose token refresh failed: the token endpoint's reason is clearer.
                    raise ToolError(str(source.failure)) from exc
                if isinstance(exc, MCPError):
                    raise MCPServerFailed(f"MCP server {spec.name!r}: {exc}") from exc
                if isinstance(exc, RuntimeError):  # the SDK's check of a result against its schema
                    raise MCPServerFailed(f"MCP server {spec.name!r}: bad result: {exc}") from exc
                raise
            return result_json(spec, result)

        return call

    async def _connection(self, spec: MCPServerSpec, tenant: str) -> MCPConnection:
        # Servers authenticated with a tenant's secret get one connection per tenant.
        key = (spec.name, tenant if spec.token_secret or spec.oauth else None)
        socket = self._hosted_socket(spec, tenant) if spec.hosted else None
        connection = self._connections.get(key)
        if connection is None:
            token = await self._token(spec, tenant)
            connection = self._connections.get(key)  # another call may have opened it meanwhile
            if connection is None:
                from steward.tools.mcp_client import MCPConnection
                from steward.tools.oauth import BearerFromSource

                auth = None
                if spec.oauth is not None:
                    auth = BearerFromSource(self._token_source(spec, tenant))
                connection = MCPConnection(
                    spec, token, lambda: self._changed(spec.name), socket=socket, auth=auth
                )
                self._connections[key] = connection
        return connection

    def _hosted_socket(self, spec: MCPServerSpec, tenant: str) -> Callable[[], str]:
        """The current version's socket of a hosted deployment of the caller's tenant."""
        root = self.hosted_root
        if root is None or spec.hosted is None:
            raise ToolError(f"MCP server {spec.name!r}: this process hosts no MCP servers")
        deployment = read_registry(root).get(spec.hosted)
        if deployment is None or deployment.tenant != tenant:
            raise ToolError(f"no hosted MCP server {spec.hosted!r} for this tenant")
        name = spec.hosted

        def socket() -> str:
            current = read_registry(root)[name]
            return str(current.directory(root) / SOCKET)

        return socket

    async def _token(self, spec: MCPServerSpec, tenant: str) -> str | None:
        if spec.token_secret is None:
            return None
        if self._secrets is None:
            raise ToolError(f"MCP server {spec.name!r} needs a secret store for its token")
        secret = await asyncio.to_thread(
            self._secrets.secret_for_agent,
            tenant,
            spec.token_secret,
            purpose={"mcp_server": spec.name},
        )
        return secret.reveal()

    def _token_source(self, spec: MCPServerSpec, tenant: str) -> TokenSource:
        """The OAuth tokens of a server for one tenant, whose secret store holds the client's
        secret; one source per (server, tenant), shared by its calls."""
        assert spec.oauth is not None
        source = self._tokens.get((spec.name, tenant))
        if source is None:
            secret_name = spec.oauth.client_secret_secret

            async def read_secret() -> str:
                if self._secrets is None:
                    raise OAuthError(f"MCP server {spec.name!r} needs a secret store for OAuth")
                secret = await asyncio.to_thread(
                    self._secrets.secret_for_agent,
                    tenant,
                    secret_name,
                    purpose={"mcp_server": spec.name},
                )
                return secret.reveal()

            source = self._tokens[(spec.name, tenant)] = TokenSource(
                spec.name, spec.oauth, read_secret
            )
        return source

    async def _changed(self, server: str) -> None:
        try:
            await self.refresh(server)
        except Exception as exc:
            log.warning("MCP server %s: re-import after tools/list_changed failed: %r", server, exc)


def result_json(spec: MCPServerSpec, result: types.CallToolResult) -> Any:
    """What the model sees of a call's result; `ToolError` for a result marked `isError`."""
    from mcp import types

    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    if result.is_error:
        message = " ".join(texts)[:2_000] or "the tool reported an error"
        raise ToolError(f"{spec.name}: {message}")
    value: Any
    if result.structured_content is not None:
        value = result.structured_content
    elif len(texts) == len(result.content) == 1:
        value = texts[0]
    else:
        value = [_block(block) for block in result.content]
    size = len(json.dumps(value, default=str))
    if size > spec.max_result_bytes:
        raise MCPServerFailed(
            f"MCP server {spec.name!r} answered with {size} bytes, over the "
            f"{spec.max_result_bytes}-byte limit for a tool result"
        )
    return value


def _block(block: Any) -> dict[str, Any]:
    from mcp import types

    if isinstance(block, types.TextContent):
        return {"type": "text", "text": block.text}
    kind = getattr(block, "type", "unknown")
    # Binary payloads (images, audio) are named, not inlined: the model gets text.
    return {"type": kind, "mime_type": getattr(block, "mime_type", None)}
