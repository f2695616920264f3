"""The GenAI spans the run engine emits: `invoke_agent`, `chat` and `execute_tool`.

Each helper is a context manager: it names the span, sets its attributes and marks errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from steward.models.types import Message, ModelRequest, ModelResponse, ToolCall
from steward.observe import genai

# The conventions' output-message finish reasons differ from Steward's in one spelling.
_CONVENTION_FINISH_REASONS = {"tool_calls": "tool_call"}


class GenAISpans:
    """The span helpers, mixed into `Tracing`, which supplies the tracer and the content switch."""

    tracer: Tracer
    capture_content: bool

    def invoke_agent(
        self, agent: str, *, conversation_id: str | None
    ) -> AbstractContextManager[Span]:
        """The span around one agent run; usage stays on its `chat` spans, never repeated here."""
        attributes: dict[str, AttributeValue] = {
            genai.GEN_AI_OPERATION_NAME: genai.OPERATION_INVOKE_AGENT,
            genai.GEN_AI_AGENT_NAME: agent,
        }
        if conversation_id is not None:
            attributes[genai.GEN_AI_CONVERSATION_ID] = conversation_id
        return self._span(f"invoke_agent {agent}", SpanKind.INTERNAL, attributes)

    @contextmanager
    def chat(self, provider: str, request: ModelRequest) -> Iterator[ChatRecorder]:
        """The span around one model call; record the response on the yielded recorder."""
        attributes: dict[str, AttributeValue] = {
            genai.GEN_AI_OPERATION_NAME: genai.OPERATION_CHAT,
            genai.GEN_AI_PROVIDER_NAME: provider,
            genai.GEN_AI_REQUEST_MODEL: request.model,
        }
        if request.max_tokens is not None:
            attributes[genai.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
        if request.temperature is not None:
            attributes[genai.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
        if self.capture_content:
            # Set at the start so that a failed call still shows what it was asked.
            attributes[genai.GEN_AI_INPUT_MESSAGES] = input_messages_json(request.messages)
        with self._span(f"chat {request.model}", SpanKind.CLIENT, attributes) as span:
            yield ChatRecorder(span, capture_content=self.capture_content)

    def execute_tool(self, tool: str, call_id: str, *, step: int) -> AbstractContextManager[Span]:
        """The span around one tool call at journal step `step`."""
        attributes: dict[str, AttributeValue] = {
            genai.GEN_AI_OPERATION_NAME: genai.OPERATION_EXECUTE_TOOL,
            genai.GEN_AI_TOOL_NAME: tool,
            genai.GEN_AI_TOOL_CALL_ID: call_id,
            genai.GEN_AI_TOOL_TYPE: "function",
            genai.STEWARD_STEP: step,
        }
        return self._span(f"execute_tool {tool}", SpanKind.INTERNAL, attributes)

    @contextmanager
    def _span(
        self, name: str, kind: SpanKind, attributes: dict[str, AttributeValue]
    ) -> Iterator[Span]:
        with self.tracer.start_as_current_span(
            name,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc) or None))
                span.set_attribute(genai.ERROR_TYPE, type(exc).__qualname__)
                raise


class ChatRecorder:
    """Writes a model response onto its `chat` span."""

    def __init__(self, span: Span, *, capture_content: bool) -> None:
        self.span = span
        self._capture_content = capture_content

    def record(self, response: ModelResponse, cost_usd: float | None, cost_known: bool) -> None:
        """Response model and id, finish reason, usage, time to first chunk, cost, and content."""
        usage = response.usage
        attributes: dict[str, AttributeValue] = {
            genai.GEN_AI_RESPONSE_MODEL: response.model,
            genai.GEN_AI_RESPONSE_ID: response.id,
            genai.GEN_AI_RESPONSE_FINISH_REASONS: [response.provider_finish_reason],
            genai.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
            genai.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
            genai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cache_read_tokens,
            genai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: usage.cache_write_tokens,
            genai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: usage.reasoning_tokens,
        }
        if response.time_to_first_chunk_s is not None:
            attributes[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = response.time_to_first_chunk_s
        if cost_usd is not None:
            attributes[genai.GEN_AI_USAGE_COST] = cost_usd
            attributes[genai.STEWARD_USAGE_COST_ESTIMATED] = not cost_known
        if self._capture_content:
            attributes[genai.GEN_AI_OUTPUT_MESSAGES] = output_messages_json(response)
        self.span.set_attributes(attributes)


def input_messages_json(messages: tuple[Message, ...]) -> str:
    """`gen_ai.input.messages`: the conventions' role-and-parts shape, as a JSON string."""
    return json.dumps([_message_json(message) for message in messages], ensure_ascii=False)


def output_messages_json(response: ModelResponse) -> str:
    """`gen_ai.output.messages`: the one assistant message with its finish reason."""
    message = _message_json(response.message())
    reason = response.finish_reason
    message["finish_reason"] = _CONVENTION_FINISH_REASONS.get(reason, reason)
    return json.dumps([message], ensure_ascii=False)


def _message_json(message: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        )
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    parts.extend(_tool_call_json(call) for call in message.tool_calls)
    result: dict[str, Any] = {"role": message.role, "parts": parts}
    if message.name is not None:
        result["name"] = message.name
    return result


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
