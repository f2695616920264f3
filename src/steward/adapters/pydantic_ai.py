"""Serve a Pydantic AI agent (`pip install 'steward[pydantic-ai]'`) as a Steward agent.

```python
from pydantic_ai import Agent
from steward import Steward
from steward.adapters.pydantic_ai import serve_pydantic_agent

support = Agent(instructions="...", name="support")

@support.tool_plain
def lookup_order(order_id: int) -> dict: ...

app = Steward()
serve_pydantic_agent(app, support)
```

The agent's code is unchanged; each run passes it two things:

- a model (Pydantic AI's `FunctionModel` around `Context.model`): every model call goes through
  the gateway in process (routing, fallbacks, spend caps, the ledger), is journaled as a step and
  traced with GenAI attributes; on resume after a crash a recorded call returns its answer.
- a capability whose `wrap_tool_execute` sends each function-tool call through `Context.tool`:
  the run's policy decides it, approvals pause it, it is journaled and traced, and inside that
  step Pydantic AI runs its own tool (validation, `RunContext`, dependencies; see `_bridge`).

Supported: the agent's function tools (`@agent.tool`, `@agent.tool_plain`, `tools=[...]`) and
text output. Structured output types and toolsets other than the function tools are refused
when the agent is served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import FunctionToolset
from pydantic_ai.usage import RequestUsage

from steward.adapters._bridge import (
    AgentInput,
    FrameworkCall,
    pending_calls,
    register_tool,
    steward_error_in,
)
from steward.adapters.messages import text_of
from steward.app import Steward
from steward.errors import ToolError, UserError
from steward.models.types import Message, ToolCall
from steward.runs.context import Context

__all__ = ["serve_pydantic_agent", "steward_model"]


def serve_pydantic_agent(
    app: Steward,
    agent: Agent[Any, Any],
    *,
    name: str | None = None,
    model: str | None = None,
    writes: Iterable[str] = (),
    needs_approval: Iterable[str] = (),
    max_steps: int = 30,
    timeout_s: float = 300.0,
    max_cost_usd: float | None = None,
    description: str | None = None,
) -> None:
    """Register `agent` on `app` as the Steward agent `name` (default: the agent's name).

    Its function tools become Steward tools of the same name: read-only unless named in
    `writes`, paused for a person's decision when named in `needs_approval`. `model` is a
    Steward model string (default: `STEWARD_MODEL`); the agent's own model is not called.
    The run's input is `{"message": ...}` and its output `{"output": ...}`.
    """
    agent_name = name or agent.name
    if not agent_name:
        raise UserError("give the Pydantic AI agent a name, or pass name=...")
    if agent.output_type is not str:
        raise UserError(f"agent {agent_name!r}: only text output (output_type=str) is supported")
    tools = _function_tools(agent, agent_name)
    write_set, approval_set = set(writes), set(needs_approval)
    unknown = (write_set | approval_set) - set(tools)
    if unknown:
        raise UserError(f"agent {agent_name!r} has no function tools named {sorted(unknown)}")
    for tool_name, definition in tools.items():
        register_tool(
            app,
            name=tool_name,
            description=definition.description or "",
            schema=definition.parameters_json_schema,
            writes=tool_name in write_set,
            needs_approval=tool_name in approval_set,
        )

    async def run(ctx: Context, input: AgentInput) -> str:
        with pending_calls() as pending:
            try:
                result = await agent.run(
                    input.message,
                    model=steward_model(ctx, model),
                    capabilities=[_ToolsThroughSteward(ctx, pending, frozenset(tools))],
                )
            except Exception as exc:
                found = steward_error_in(exc)
                if found is not None and found is not exc:
                    raise found from exc
                raise
        return str(result.output)

    app.agent(
        agent_name,
        max_steps=max_steps,
        timeout_s=timeout_s,
        max_cost_usd=max_cost_usd,
        model=model,
        tools=list(tools),
        description=description or f"Pydantic AI agent {agent_name}",
    )(run)


def _function_tools(agent: Agent[Any, Any], name: str) -> dict[str, ToolDefinition]:
    toolsets = list(agent.toolsets)
    function_toolset = toolsets[0]
    if not isinstance(function_toolset, FunctionToolset) or len(toolsets) > 1:
        raise UserError(f"agent {name!r}: only the agent's own function tools can be served")
    return {tool.name: tool.tool_def for tool in function_toolset.tools.values()}


def steward_model(ctx: Context, model: str | None = None) -> FunctionModel:
    """A Pydantic AI model whose every request is one `Context.model` step."""

    async def request(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        settings = info.model_settings or {}
        response = await ctx.model(
            _to_steward(messages),
            system=info.instructions,
            tools=[t.name for t in info.function_tools],
            model=model,
            max_tokens=settings.get("max_tokens"),
            temperature=settings.get("temperature"),
        )
        parts: list[ModelResponsePart] = []
        if response.content:
            parts.append(TextPart(response.content))
        parts.extend(
            ToolCallPart(tool_name=c.name, args=c.arguments, tool_call_id=c.id)
            for c in response.tool_calls
        )
        return ModelResponse(
            parts=parts,
            usage=RequestUsage(
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
            ),
            model_name=response.model,
        )

    return FunctionModel(request, model_name=model or "steward")


def _to_steward(messages: list[ModelMessage]) -> list[Message]:
    result: list[Message] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
            calls = tuple(
                ToolCall(p.tool_call_id, p.tool_name, p.args_as_dict())
                for p in message.parts
                if isinstance(p, ToolCallPart)
            )
            result.append(Message(role="assistant", content=text, tool_calls=calls))
            continue
        assert isinstance(message, ModelRequest)
        for part in message.parts:
            if isinstance(part, SystemPromptPart):
                result.append(Message(role="system", content=part.content))
            elif isinstance(part, UserPromptPart):
                result.append(Message(role="user", content=text_of(part.content)))
            elif isinstance(part, ToolReturnPart):
                result.append(_tool_message(part.tool_call_id, part.tool_name, part.content))
            elif isinstance(part, RetryPromptPart):
                if part.tool_name is None:
                    result.append(Message(role="user", content=part.model_response()))
                else:
                    result.append(
                        Message(
                            role="tool",
                            content=part.model_response(),
                            tool_call_id=part.tool_call_id,
                            name=part.tool_name,
                        )
                    )
    return result


def _tool_message(call_id: str, name: str, content: Any) -> Message:
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    return Message(role="tool", content=text, tool_call_id=call_id, name=name)


@dataclass(init=False)
class _ToolsThroughSteward(AbstractCapability[Any]):
    """Each function-tool execution becomes one `Context.tool` step that runs the original."""

    ctx: Context
    pending: dict[str, FrameworkCall]
    names: frozenset[str]

    def __init__(
        self, ctx: Context, pending: dict[str, FrameworkCall], names: frozenset[str]
    ) -> None:
        self.ctx = ctx
        self.pending = pending
        self.names = names

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        handler: Any,
    ) -> Any:
        if tool_def.name not in self.names:
            return await handler(args)
        arguments = call.args_as_dict()

        async def framework(sent: dict[str, Any]) -> Any:
            # Arguments a person edited at approval replace the validated ones.
            return await handler(args if sent == arguments else sent)

        self.pending[call.tool_call_id] = framework
        try:
            return await self.ctx.tool(tool_def.name, arguments, call_id=call.tool_call_id)
        except ToolError as exc:  # the model sees the failure, as in `Context.tool_loop`
            return {"error": str(exc)}
        finally:
            self.pending.pop(call.tool_call_id, None)
