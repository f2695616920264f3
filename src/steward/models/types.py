"""The model-provider contract: the data every provider speaks and the one interface it implements.

Usage is normalised so that `input_tokens` is the *total* input, cached tokens included, as the
OpenTelemetry GenAI conventions count it; providers convert from their wire rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]


@dataclass(frozen=True)
class ToolDefinition:
    """A tool as a model sees it: name, description and a JSON-schema object for arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # for role == "tool"
    name: str | None = None  # tool name for role == "tool"

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": self.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "tool_call_id": self.tool_call_id,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(
            role=data["role"],
            content=data.get("content") or "",
            tool_calls=tuple(
                ToolCall(c["id"], c["name"], c.get("arguments") or {})
                for c in data.get("tool_calls") or ()
            ),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolDefinition, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    tool_choice: Literal["auto", "none", "required"] | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Token usage; `input_tokens` includes cache reads and cache writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # True when the provider never reported usage (e.g. a cut stream)
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written for one hour

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "estimated": self.estimated,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class ModelResponse:
    provider: str  # gen_ai.provider.name: "openai", "anthropic", "steward.local", ...
    model: str  # the model the provider says answered
    id: str
    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    provider_finish_reason: str  # the raw value off the wire, for gen_ai.response.finish_reasons
    usage: Usage
    time_to_first_chunk_s: float | None = None  # streaming only: first content/tool delta
    extra: dict[str, Any] = field(default_factory=dict)

    def message(self) -> Message:
        return Message(role="assistant", content=self.content, tool_calls=self.tool_calls)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "id": self.id,
            "content": self.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "finish_reason": self.finish_reason,
            "provider_finish_reason": self.provider_finish_reason,
            "usage": self.usage.to_json(),
            "time_to_first_chunk_s": self.time_to_first_chunk_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelResponse:
        return cls(
            provider=data["provider"],
            model=data["model"],
            id=data["id"],
            content=data["content"],
            tool_calls=tuple(
                ToolCall(c["id"], c["name"], c["arguments"]) for c in data["tool_calls"]
            ),
            finish_reason=data["finish_reason"],
            provider_finish_reason=data["provider_finish_reason"],
            usage=Usage.from_json(data["usage"]),
            time_to_first_chunk_s=data.get("time_to_first_chunk_s"),
        )


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str | None
    name: str | None
    arguments_fragment: str


@dataclass(frozen=True)
class StreamDone:
    """Always the last event of a successful stream: the assembled response."""

    response: ModelResponse


StreamEvent = TextDelta | ToolCallDelta | StreamDone


@runtime_checkable
class ModelProvider(Protocol):
    """Who we talk to and how its API dialect speaks. One instance per configured deployment."""

    name: str

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """One non-streaming call. Raises `ModelHTTPError` / `ModelError`."""
        ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream deltas; the final event is `StreamDone`. Raises `ModelStreamError` on a cut."""
        ...

    async def aclose(self) -> None: ...
