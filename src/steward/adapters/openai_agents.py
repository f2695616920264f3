"""Serve an OpenAI Agents SDK agent (`pip install 'steward[openai-agents]'`) as a Steward agent.

```python
from agents import Agent, function_tool
from steward import Steward
from steward.adapters.openai_agents import serve_openai_agent

@function_tool
def lookup_order(order_id: int) -> dict: ...

app = Steward()
serve_openai_agent(app, Agent(name="support", instructions="...", tools=[lookup_order]))
```

The agent's code is unchanged; at run time it is cloned with two things swapped in:

- its model is a `StewardModel`: every model call is `Context.model`, so it goes through the
  gateway in process (routing, fallbacks, spend caps, the ledger), is journaled as a step and
  traced with GenAI attributes; on resume after a crash a recorded call returns its answer.
- each function tool calls `Context.tool`: the run's policy decides it, approvals pause it, it is
  journaled and traced, and inside that step the SDK's own tool runs (see `_bridge`).

The SDK's own tracing is switched off for these runs (it would export to OpenAI); Steward's
spans cover each model and tool call. Supported: function tools and plain-text or structured
output. Hosted tools, handoffs and MCP servers are refused when the agent is served.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from agents import Agent, FunctionTool, ModelSettings, RunConfig, Runner
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.models.chatcmpl_converter import Converter
from agents.models.interface import Model, ModelProvider, ModelTracing
from agents.tool import Tool as SdkTool
from agents.tool_context import ToolContext as SdkToolContext
from agents.usage import Usage as SdkUsage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from steward.adapters._bridge import (
    AgentInput,
    FrameworkCall,
    pending_calls,
    register_tool,
    steward_error_in,
)
from steward.adapters.messages import from_chat_messages
from steward.app import Steward
from steward.errors import ToolError, UserError
from steward.models.resolve import parse_model_string
from steward.models.types import ModelResponse as StewardResponse
from steward.runs.context import Context

__all__ = ["StewardModel", "StewardModelProvider", "serve_openai_agent"]


def serve_openai_agent(
    app: Steward,
    agent: Agent[Any],
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
    Steward model string (default: `STEWARD_MODEL`); the SDK agent's own model name is used
    instead when it is one. The run's input is `{"message": ...}` and its output `{"output": ...}`.
    """
    tools = _function_tools(agent)
    write_set, approval_set = set(writes), set(needs_approval)
    unknown = (write_set | approval_set) - {t.name for t in tools}
    if unknown:
        raise UserError(f"agent {agent.name!r} has no function tools named {sorted(unknown)}")
    for tool in tools:
        register_tool(
            app,
            name=tool.name,
            description=tool.description,
            schema=tool.params_json_schema,
            writes=tool.name in write_set,
            needs_approval=tool.name in approval_set,
        )

    async def run(ctx: Context, input: AgentInput) -> str:
        with pending_calls() as pending:
            served = agent.clone(tools=[_through_steward(t, ctx, pending) for t in tools])
            config = RunConfig(model_provider=StewardModelProvider(ctx), tracing_disabled=True)
            try:
                result = await Runner.run(
                    served, input.message, run_config=config, max_turns=max_steps
                )
            except Exception as exc:
                found = steward_error_in(exc)
                if found is not None and found is not exc:
                    raise found from exc
                raise
        output = result.final_output
        if isinstance(output, str):
            return output
        return json.dumps(
            output.model_dump(mode="json") if hasattr(output, "model_dump") else output
        )

    app.agent(
        name or agent.name,
        max_steps=max_steps,
        timeout_s=timeout_s,
        max_cost_usd=max_cost_usd,
        model=model,
        tools=[t.name for t in tools],
        description=description or _description(agent),
    )(run)


def _function_tools(agent: Agent[Any]) -> list[FunctionTool]:
    if agent.handoffs:
        raise UserError(f"agent {agent.name!r}: handoffs are not supported by the adapter")
    if agent.mcp_servers:
        raise UserError(f"agent {agent.name!r}: MCP servers are not supported by the adapter")
    tools: list[FunctionTool] = []
    for tool in agent.tools:
        if not isinstance(tool, FunctionTool):
            raise UserError(
                f"agent {agent.name!r}: only function tools are served, not {type(tool).__name__}"
            )
        tools.append(tool)
    return tools


def _description(agent: Agent[Any]) -> str:
    if agent.handoff_description:
        return agent.handoff_description
    return agent.instructions if isinstance(agent.instructions, str) else agent.name


def _through_steward(
    tool: FunctionTool, ctx: Context, pending: dict[str, FrameworkCall]
) -> FunctionTool:
    """The same tool, whose invocation is one `Context.tool` step running the original."""
    original = tool.on_invoke_tool

    async def invoke(tool_context: SdkToolContext[Any], arguments_json: str) -> Any:
        call_id = tool_context.tool_call_id

        async def framework(arguments: dict[str, Any]) -> Any:
            return await original(tool_context, json.dumps(arguments))

        pending[call_id] = framework
        try:
            arguments = json.loads(arguments_json or "{}")
            result = await ctx.tool(tool.name, arguments, call_id=call_id)
        except ToolError as exc:  # the model sees the failure, as in `Context.tool_loop`
            return json.dumps({"error": str(exc)})
        except json.JSONDecodeError as exc:
            return json.dumps({"error": f"the arguments are not valid JSON: {exc}"})
        finally:
            pending.pop(call_id, None)
        return result if isinstance(result, str) else json.dumps(result)

    return dataclasses.replace(tool, on_invoke_tool=invoke)


class StewardModelProvider(ModelProvider):
    """Every model an SDK agent asks for, answered through the run's `Context`."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def get_model(self, model_name: str | None) -> Model:
        return StewardModel(self._ctx, _steward_model(model_name))


def _steward_model(name: str | None) -> str | None:
    """The SDK agent's model name when it is a Steward model string, else the run's default."""
    if not name:
        return None
    try:
        parse_model_string(name)
    except UserError:
        return None
    return name


class StewardModel(Model):
    """An SDK `Model` whose calls are `Context.model` steps."""

    def __init__(self, ctx: Context, model: str | None) -> None:
        self._ctx = ctx
        self._model = model

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[SdkTool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        system = system_instructions or ""
        if output_schema is not None and not output_schema.is_plain_text():
            schema = json.dumps(output_schema.json_schema())
            system += f"\n\nAnswer with only a JSON object that matches this schema: {schema}"
        messages = from_chat_messages(Converter.items_to_messages(input))
        response = await self._ctx.model(
            messages,
            system=system or None,
            tools=[t.name for t in tools],
            model=self._model,
            max_tokens=model_settings.max_tokens,
            temperature=model_settings.temperature,
        )
        return ModelResponse(
            output=_output_items(response),
            usage=SdkUsage(
                requests=1,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                total_tokens=response.usage.input_tokens + response.usage.output_tokens,
            ),
            response_id=None,
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[SdkTool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """One completed event: text deltas already reach the run's stream through the gateway."""
        answer = await self.get_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )
        usage = answer.usage
        response = Response(
            id="steward-response",
            created_at=0,
            model=self._model or "steward",
            object="response",
            output=answer.output,
            tool_choice="auto",
            tools=[],
            top_p=None,
            parallel_tool_calls=False,
            status="completed",
            usage=ResponseUsage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
                # Validated from data: the fields differ between openai versions.
                input_tokens_details=InputTokensDetails.model_validate(
                    {"cached_tokens": 0, "cache_write_tokens": 0}
                ),
                output_tokens_details=OutputTokensDetails.model_validate({"reasoning_tokens": 0}),
            ),
        )
        yield ResponseCompletedEvent(
            type="response.completed", response=response, sequence_number=0
        )


def _output_items(response: StewardResponse) -> list[Any]:
    items: list[Any] = []
    if response.content:
        items.append(
            ResponseOutputMessage(
                id=f"msg_{response.id}",
                type="message",
                role="assistant",
                status="completed",
                content=[
                    ResponseOutputText(
                        text=response.content, type="output_text", annotations=[], logprobs=[]
                    )
                ],
            )
        )
    for call in response.tool_calls:
        items.append(
            ResponseFunctionToolCall(
                id=call.id,
                call_id=call.id,
                type="function_call",
                name=call.name,
                arguments=json.dumps(call.arguments),
            )
        )
    return items
