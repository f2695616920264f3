"""Steward as an MCP server: what a Steward API key sees and may call at `/mcp`.

- Each agent is a tool `run_<agent>` (keys that may start runs: admin, developer, runner) whose
  input schema is the agent's input model. A call starts a run and answers with its output
  when the run ends within `wait_s`; otherwise with a handle (`run_id`, `status`) that the
  `get_run` tool, or the HTTP API, follows.
- The app's own tools are listed by permission: read-only tools for every key, write tools for
  keys that may start runs; tools that need a person's approval are not offered (an MCP call
  has no run to pause), nor are tools imported from other MCP servers. A call goes through the
  same tool runner as a run's (timeout, retries, breaker) inside an `execute_tool` span; a write
  tool's idempotency key is the caller's `_meta["steward/idempotency_key"]`, else a fresh one.

Everything is scoped to the key's tenant. Failures are tool results with `isError`, which an
MCP client hands its model, never protocol errors.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from steward.app import Steward
from steward.errors import InvalidInput, NotFound, StewardError, ToolError
from steward.observe.tracing import Tracing
from steward.runs.engine import RunEngine, RunRequest
from steward.security.keys import Principal
from steward.security.redaction import REDACTOR
from steward.security.secrets import Secret, SecretStore
from steward.store.schema import Run
from steward.tools.mcp_tools import IDEMPOTENCY_META
from steward.tools.registry import Tool, ToolContext

RUN_PREFIX = "run_"
GET_RUN = "get_run"
RUNNER_ROLES = frozenset({"admin", "developer", "runner"})
_GET_RUN_SCHEMA = {
    "type": "object",
    "properties": {"run_id": {"type": "string", "description": "The id a run_ tool returned."}},
    "required": ["run_id"],
    "additionalProperties": False,
}


@dataclass
class ExposedSteward:
    """The handlers behind `/mcp`, over one runtime's engine."""

    app: Steward
    engine: RunEngine
    tracing: Tracing
    secrets: SecretStore | None
    wait_s: float = 60.0

    def server(self) -> Server[Any]:
        return Server(
            "steward",
            version="0.1.0",
            instructions="Steward's agents (run_<agent>) and tools, for this API key's tenant.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # -- listing ------------------------------------------------------------------------------

    def tools_for(self, principal: Principal) -> list[types.Tool]:
        runner = principal.role in RUNNER_ROLES
        listed: list[types.Tool] = []
        if runner:
            for agent in self.app.agents.values():
                schema = agent.input_model.model_json_schema()
                listed.append(
                    types.Tool(
                        name=RUN_PREFIX + agent.name,
                        description=f"Run the agent {agent.name!r}: {agent.description}".strip(),
                        input_schema=schema,
                        annotations=types.ToolAnnotations(
                            read_only_hint=False, destructive_hint=False, open_world_hint=True
                        ),
                    )
                )
        listed.append(
            types.Tool(
                name=GET_RUN,
                description="The status of a run a run_ tool started, and its output once done.",
                input_schema=_GET_RUN_SCHEMA,
                annotations=types.ToolAnnotations(read_only_hint=True),
            )
        )
        for tool in self._own_tools(principal).values():
            definition = tool.definition()
            listed.append(
                types.Tool(
                    name=tool.name,
                    description=definition.description,
                    input_schema=definition.parameters,
                    annotations=types.ToolAnnotations(
                        read_only_hint=not tool.writes, destructive_hint=tool.writes
                    ),
                )
            )
        return listed

    def _own_tools(self, principal: Principal) -> dict[str, Tool]:
        runner = principal.role in RUNNER_ROLES
        return {
            name: tool
            for name, tool in self.app.tools.items()
            if getattr(tool, "source", None) is None  # not re-exported from another server
            and not tool.needs_approval
            and (runner or not tool.writes)
            and not name.startswith(RUN_PREFIX)
            and name != GET_RUN
        }

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools_for(_principal(ctx)))

    # -- calls --------------------------------------------------------------------------------

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        principal = _principal(ctx)
        arguments = dict(params.arguments or {})
        try:
            if params.name == GET_RUN:
                value = await self._get_run(principal, arguments)
            elif params.name.startswith(RUN_PREFIX) and principal.role in RUNNER_ROLES:
                value = await self._run_agent(principal, params.name[len(RUN_PREFIX) :], arguments)
            else:
                meta = dict(params.meta or {})
                value = await self._call_own_tool(principal, params.name, arguments, meta)
        except InvalidInput as exc:
            return _error(f"{exc}: {json.dumps(exc.errors, default=str)[:2_000]}")
        except (StewardError, ValueError) as exc:
            return _error(str(exc))
        value = REDACTOR.scrub(value)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(value, default=str))],
            structured_content=value if isinstance(value, dict) else {"result": value},
        )

    async def _run_agent(
        self, principal: Principal, agent: str, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        if agent not in self.app.agents:
            raise ToolError(f"no tool named {RUN_PREFIX + agent!r}")
        run = await self.engine.submit(
            RunRequest(
                tenant_id=principal.tenant_id,
                agent=agent,
                input=arguments,
                metadata={"source": "mcp", "key_id": principal.key_id},
                user_id=principal.user_id,
            )
        )
        try:
            finished = await asyncio.wait_for(
                self.engine.wait(principal.tenant_id, run.id), self.wait_s
            )
        except TimeoutError:
            current = await self.engine.get(principal.tenant_id, run.id)
            return _handle(current)
        return _handle(finished)

    async def _get_run(self, principal: Principal, arguments: dict[str, Any]) -> dict[str, Any]:
        run_id = arguments.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ToolError("get_run needs a run_id string")
        try:
            return _handle(await self.engine.get(principal.tenant_id, run_id))
        except NotFound as exc:
            raise ToolError(f"no run {run_id!r} in this tenant") from exc

    async def _call_own_tool(
        self, principal: Principal, name: str, arguments: dict[str, Any], meta: dict[str, Any]
    ) -> Any:
        tool = self._own_tools(principal).get(name)
        if tool is None:
            raise ToolError(f"no tool named {name!r} is available to this key")
        key = meta.get(IDEMPOTENCY_META)
        call_id = f"mcp_{uuid.uuid4().hex}"
        context = ToolContext(
            run_id=call_id,
            tenant_id=principal.tenant_id,
            step=0,
            idempotency_key=str(key) if key else call_id,
            call_id=call_id,
            secrets=self._secret_reader(principal, name),
        )
        with self.tracing.execute_tool(name, call_id, step=0) as span:
            span.set_attribute("steward.mcp.caller_key", principal.key_id)
            return await self.engine.tool_runner.invoke(tool, arguments, context, span=span)

    def _secret_reader(self, principal: Principal, tool: str) -> Any:
        store = self.secrets

        def read(name: str) -> Secret:
            if store is None:
                raise ToolError("no secret store is configured")
            where: dict[str, object] = {"mcp_tool": tool, "key_id": principal.key_id}
            return store.secret_for_agent(principal.tenant_id, name, purpose=where)

        return read


def _principal(ctx: ServerRequestContext[Any]) -> Principal:
    """The key `AuthGate` authenticated for this HTTP request (the route runs behind it)."""
    request = ctx.request
    state = getattr(request, "scope", {}).get("state", {}) if request is not None else {}
    principal = state.get("principal")
    if not isinstance(principal, Principal):
        raise PermissionError("no authenticated Steward principal on this MCP request")
    return principal


def _handle(run: Run) -> dict[str, Any]:
    """A finished run's output or error; an unfinished one's id, to follow with `get_run`."""
    data: dict[str, Any] = {"run_id": run.id, "status": run.status}
    if run.status == "success":
        data["output"] = run.output or {}
    elif run.status in ("pending", "running"):
        data["next"] = f"call {GET_RUN} with this run_id, or GET /runs/{run.id}"
    else:
        data["stop_reason"] = run.stop_reason
        data["error"] = run.error or {}
    return data


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message[:4_000])], is_error=True
    )
