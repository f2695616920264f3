"""What every framework adapter shares: framework tools registered as Steward tools, the hand-off
of a framework's pending tool call to Steward's tool step, and the run's own errors unwrapped.

A framework's tool call goes through `Context.tool`: the run's policy decides it, an approval may
pause it, it is journaled and traced as one step, and the tool runner applies its timeout,
retries and breaker. Inside that step the Steward tool calls back into the framework's own tool
(with the framework's run context, found by the call id), so the tool keeps its framework
semantics (dependencies, argument validation) and runs at most once per journaled step.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from steward.app import Steward
from steward.errors import RunSignal, StewardError, ToolError, UserError
from steward.models.types import ToolDefinition
from steward.tools.registry import Tool, ToolContext
from steward.tools.resilience import ToolResilience

__all__ = [
    "AgentInput",
    "BridgedTool",
    "FrameworkCall",
    "pending_calls",
    "register_tool",
    "steward_error_in",
]

FrameworkCall = Callable[[dict[str, Any]], Awaitable[Any]]
"""Runs the framework's own tool with (possibly approval-edited) arguments."""

_PENDING: contextvars.ContextVar[dict[str, FrameworkCall] | None] = contextvars.ContextVar(
    "steward_adapter_pending_calls", default=None
)


# Not a valid identifier in a JSON schema a framework derives from a function: never a tool's own.
_CONTEXT_PARAM = "__steward_tool_context__"


class AgentInput(BaseModel):
    """The input of an adapted agent: one user message."""

    message: str


class _AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class BridgedTool(Tool):
    """A Steward tool whose schema is the framework's and whose body is the framework's tool."""

    schema: dict[str, Any] = field(default_factory=dict)

    def definition(self) -> ToolDefinition:
        return ToolDefinition(self.name, self.description, self.schema)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        # The framework validates against its own schema when the call reaches its tool.
        if not isinstance(arguments, dict):
            raise ToolError(f"invalid arguments for tool {self.name!r}: expected an object")
        return dict(arguments)


def register_tool(
    app: Steward,
    *,
    name: str,
    description: str,
    schema: dict[str, Any],
    writes: bool,
    needs_approval: bool,
) -> None:
    """Declare the framework tool `name` on `app` (once: agents may share a tool)."""
    existing = app.tools.get(name)
    if existing is not None:
        if not isinstance(existing, BridgedTool):
            raise UserError(f"tool {name!r} is declared by the app and by a framework agent")
        return

    async def run_framework_tool(**arguments: Any) -> Any:
        context: ToolContext = arguments.pop(_CONTEXT_PARAM)
        pending = _PENDING.get() or {}
        call = pending.get(context.call_id)
        if call is None:
            raise ToolError(
                f"tool {name!r} belongs to a framework agent and runs only inside its run"
            )
        return await call(arguments)

    app.add_tool(
        BridgedTool(
            name=name,
            description=description or name,
            fn=run_framework_tool,
            arguments_model=_AnyArguments,
            context_param=_CONTEXT_PARAM,
            writes=writes,
            needs_approval=needs_approval,
            resilience=ToolResilience(),
            schema=schema,
        )
    )


@contextmanager
def pending_calls() -> Iterator[dict[str, FrameworkCall]]:
    """A table, for this run's task, of framework tool calls waiting for their Steward step."""
    table: dict[str, FrameworkCall] = {}
    token = _PENDING.set(table)
    try:
        yield table
    finally:
        _PENDING.reset(token)


def steward_error_in(exc: BaseException) -> StewardError | None:
    """The run-ending Steward error a framework wrapped (caps, policy stops, model errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RunSignal | StewardError) and not isinstance(current, ToolError):
            return current
        current = current.__cause__ or current.__context__
    return None
