"""The `Steward` app object: where agents and tools are declared with decorators.

```python
app = Steward()

@app.tool()
def lookup_order(order_id: int) -> dict: ...

@app.agent(name="support")
async def support(ctx: Context, input: Question) -> Answer: ...
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from steward.errors import UserError
from steward.policy.declaration import AgentPolicy
from steward.policy.record import DecisionSink
from steward.runs.agent import Agent, AgentFn, Limits, make_agent
from steward.tools.mcp_spec import MCPServerSpec
from steward.tools.mcp_tools import RemoteTools
from steward.tools.registry import Tool, make_tool
from steward.tools.resilience import ToolResilience
from steward.tools.schema_tools import Handler, make_schema_tool
from steward.tools.search import SEARCH_TOOL, search_tool, with_search_trusted

F = TypeVar("F", bound=Callable[..., Any])


class Steward:
    """A registry of agents and tools; the server and engine read it, never the other way."""

    def __init__(self) -> None:
        self.agents: dict[str, Agent] = {}
        self.tools: dict[str, Tool] = {}
        self.decision_sinks: list[DecisionSink] = []
        """Where every run's policy decisions also go (e.g. an audit trail), once per step."""
        self._search_tools: dict[str, tuple[tuple[str, tuple[str, ...]], Tool]] = {}
        self.remote = RemoteTools(self.tools)
        """Remote MCP servers (`add_mcp_server`); their tools join `tools` when the runtime
        starts."""

    def agent(
        self,
        name: str | None = None,
        *,
        max_steps: int = 30,
        timeout_s: float = 300.0,
        max_cost_usd: float | None = None,
        approval_timeout_s: float = 86_400.0,
        model: str | None = None,
        tools: Iterable[str] | None = None,
        description: str | None = None,
        policy: AgentPolicy | None = None,
        tool_search: bool = False,
    ) -> Callable[[AgentFn], AgentFn]:
        """Declare an agent. With `tool_search=True` its model is offered one `search_tools`
        tool (BM25 over the agent's tools) and only the schemas its searches load, instead of
        every tool's schema on every call."""
        if tool_search:
            policy = with_search_trusted(policy or AgentPolicy())

        def register(fn: AgentFn) -> AgentFn:
            agent_name = name or fn.__name__
            if agent_name in self.agents:
                raise UserError(f"agent {agent_name!r} is declared twice")
            allow = tuple(tools) if tools is not None else None
            for tool in allow or ():
                if tool not in self.tools and tool not in self.remote.specs:
                    raise UserError(f"agent {agent_name!r} allows unknown tool {tool!r}")
            self.agents[agent_name] = make_agent(
                fn,
                name=agent_name,
                limits=Limits(
                    max_steps=max_steps,
                    timeout_s=timeout_s,
                    max_cost_usd=max_cost_usd,
                    approval_timeout_s=approval_timeout_s,
                ),
                model=model,
                tools=allow,
                description=description,
                policy=policy,
                tool_search=tool_search,
            )
            return fn

        return register

    def tool(
        self,
        name: str | None = None,
        *,
        read_only: bool | None = None,
        writes: bool = False,
        needs_approval: bool = False,
        description: str | None = None,
        timeout_s: float | None = None,
        retries: int = 0,
        retry_on: Sequence[type[BaseException]] = (),
        breaker_failures: int = 5,
        breaker_cooloff_s: float = 30.0,
    ) -> Callable[[F], F]:
        """Declare a tool; read-only unless `writes=True` (or, equally, `read_only=False`).

        With `needs_approval=True` every call pauses its run until a person approves, edits or
        rejects it through the API; the pause survives restarts.

        `timeout_s` bounds each attempt; `retries` (at most 3) retries, with jittered
        exponential backoff, failures of the `retry_on` classes or `steward.Retryable` (a write
        tool sees the same idempotency key on each attempt); after `breaker_failures` failed
        calls in a row for one tenant (0: never), calls are answered at once with an error for
        `breaker_cooloff_s`. Settings can override each per tool name (`Settings.tools`).
        """
        if read_only is True and writes:
            raise UserError("a tool is either read_only or writes, not both")
        writes = writes or read_only is False
        resilience = ToolResilience(
            timeout_s=timeout_s,
            retries=retries,
            retry_on=tuple(retry_on),
            breaker_failures=breaker_failures,
            breaker_cooloff_s=breaker_cooloff_s,
        )

        def register(fn: F) -> F:
            tool = make_tool(
                fn,
                name=name,
                description=description,
                writes=writes,
                needs_approval=needs_approval,
                resilience=resilience,
            )
            if tool.name in self.tools:
                raise UserError(f"tool {tool.name!r} is declared twice")
            self.tools[tool.name] = tool
            return fn

        return register

    def add_tool(
        self,
        tool: Tool | None = None,
        *,
        name: str | None = None,
        description: str = "",
        input_schema: Mapping[str, Any] | None = None,
        handler: Handler | None = None,
        writes: bool = False,
        needs_approval: bool = False,
        timeout_s: float | None = None,
        retries: int = 0,
        retry_on: Sequence[type[BaseException]] = (),
        breaker_failures: int = 5,
        breaker_cooloff_s: float = 30.0,
    ) -> Tool:
        """Register a ready-made tool (`app.add_tool(steward.sandbox.run_code)`), or declare one
        by JSON Schema: `app.add_tool(name=, description=, input_schema=, handler=async fn(args,
        ctx))`. Arguments are validated against the schema (JSON Schema 2020-12) before the
        handler runs; the other options mean what they mean for `@app.tool`."""
        if tool is None:
            if name is None or input_schema is None or handler is None:
                raise UserError("add_tool needs a Tool, or name, input_schema and handler")
            tool = make_schema_tool(
                name=name,
                description=description,
                input_schema=input_schema,
                handler=handler,
                writes=writes,
                needs_approval=needs_approval,
                resilience=ToolResilience(
                    timeout_s=timeout_s,
                    retries=retries,
                    retry_on=tuple(retry_on),
                    breaker_failures=breaker_failures,
                    breaker_cooloff_s=breaker_cooloff_s,
                ),
            )
        elif name is not None or input_schema is not None or handler is not None:
            raise UserError("add_tool takes either a Tool or name/input_schema/handler, not both")
        if tool.name in self.tools:
            raise UserError(f"tool {tool.name!r} is declared twice")
        self.tools[tool.name] = tool
        return tool

    def add_mcp_server(
        self,
        name: str,
        *,
        url: str | None = None,
        command: str | None = None,
        args: Sequence[str] = (),
        **options: Any,
    ) -> MCPServerSpec:
        """Use a remote MCP server's tools (streamable HTTP `url`, or a stdio `command`); they
        are named `<name>__<tool>`, and an agent's `tools=[name]` allows all of them. Options:
        see `steward.tools.mcp_client.MCPServerSpec` (token_secret, tenant, timeout_s, ...)."""
        spec = MCPServerSpec(name=name, url=url, command=command, args=tuple(args), **options)
        self.remote.add(spec)
        return spec

    def tools_for(self, agent: Agent) -> dict[str, Tool]:
        return self._with_search(agent, self._allowed(agent))

    def _allowed(self, agent: Agent) -> dict[str, Tool]:
        if agent.tools is None:
            return dict(self.tools)
        tools: dict[str, Tool] = {}
        for name in agent.tools:
            if name in self.remote.specs:
                tools.update(self.remote.tools_of(name))
            elif name in self.tools:
                tools[name] = self.tools[name]
        return tools

    def _with_search(self, agent: Agent, tools: dict[str, Tool]) -> dict[str, Tool]:
        if not agent.tool_search:
            return tools
        key = (agent.name, tuple(tools))
        if self._search_tools.get(agent.name, (None,))[0] != key:
            self._search_tools[agent.name] = (key, search_tool(tools))
        return {**tools, SEARCH_TOOL: self._search_tools[agent.name][1]}

    @classmethod
    def combine(cls, apps: Iterable[Steward]) -> Steward:
        """Serve several apps as one; agent names must be unique across them."""
        merged = cls()
        for app in apps:
            for agent in app.agents.values():
                if agent.name in merged.agents:
                    raise UserError(f"agent {agent.name!r} is declared by two apps")
                tools = app._allowed(agent)  # the search tool is made again for the merged app
                for tool_name, tool in tools.items():
                    existing = merged.tools.get(tool_name)
                    if existing is not None and existing.fn is not tool.fn:
                        raise UserError(f"two apps declare different tools named {tool_name!r}")
                    merged.tools[tool_name] = tool
                # Remote servers stay named: their tools arrive when the runtime starts.
                allowed = app.remote.specs if agent.tools is None else agent.tools
                servers = tuple(n for n in allowed if n in app.remote.specs)
                merged.agents[agent.name] = replace(agent, tools=(*tools, *servers))
            for spec in app.remote.specs.values():
                if merged.remote.specs.get(spec.name) != spec:
                    merged.remote.add(spec)
            merged.decision_sinks.extend(app.decision_sinks)
        return merged
