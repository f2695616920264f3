"""The Anthropic Messages dialect over httpx, JSON and streaming: system prompt, tool_use and
tool_result blocks, cache-aware usage and the typed event stream, read to the letter.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from steward.errors import ModelHTTPError, ModelStreamError
from steward.models._wire import (
    decode_json_body,
    default_retryable,
    estimated_usage,
    parse_retry_after,
    parse_tool_arguments,
    post_json,
    post_sse,
)
from steward.models.types import (
    FinishReason,
    Message,
    ModelRequest,
    ModelResponse,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["AnthropicProvider", "normalise_stop_reason", "parse_usage"]

DEFAULT_MAX_TOKENS = 1024

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
# Error types worth retrying when they arrive as an `event: error` after HTTP 200.
_RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "timeout_error"})


def normalise_stop_reason(raw: str | None) -> FinishReason:
    return _STOP_REASONS.get(raw or "", "other")


def parse_usage(usage: Mapping[str, Any]) -> Usage:
    """Anthropic's `input_tokens` excludes cache reads and writes; our input is their sum."""
    uncached = int(usage.get("input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    split = usage.get("cache_creation") or {}
    return Usage(
        cache_write_1h_tokens=int(split.get("ephemeral_1h_input_tokens") or 0),
        input_tokens=uncached + cache_write + cache_read,
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _tool_result_block(message: Message) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def convert_messages(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """Our messages as Anthropic's `system` string and alternating user/assistant turns.

    Tool results become `tool_result` blocks in a user turn; consecutive results (and a user
    message that follows them) share one turn, results first, as the API requires.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.content)
            continue
        if message.role == "assistant":
            blocks = _assistant_blocks(message)
            if blocks:  # the API rejects empty assistant turns
                turns.append({"role": "assistant", "content": blocks})
            continue
        block = (
            _tool_result_block(message)
            if message.role == "tool"
            else {"type": "text", "text": message.content}
        )
        if turns and turns[-1]["role"] == "user":
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": "user", "content": [block]})
    return "\n\n".join(system), turns


@dataclass
class _Block:
    kind: str
    text: list[str] = field(default_factory=list)
    tool_index: int = -1
    tool_id: str = ""
    tool_name: str = ""


class _StreamAssembler:
    """Folds the typed events into deltas and, at `message_stop`, one `ModelResponse`."""

    def __init__(self, provider: str, request: ModelRequest, started: float) -> None:
        self.provider = provider
        self.request = request
        self.started = started
        self.id = ""
        self.model = request.model
        self.blocks: dict[int, _Block] = {}
        self.tool_count = 0
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.stopped = False
        self.time_to_first_chunk_s: float | None = None

    def feed(self, event: str, data: Mapping[str, Any]) -> list[StreamEvent]:
        if event == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            self._merge_usage(message.get("usage"))
        elif event == "content_block_start":
            return self._block_start(int(data.get("index", 0)), data.get("content_block") or {})
        elif event == "content_block_delta":
            return self._block_delta(int(data.get("index", 0)), data.get("delta") or {})
        elif event == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            # Counts here are cumulative totals, so they replace, never add.
            self._merge_usage(data.get("usage"))
        elif event == "message_stop":
            self.stopped = True
        return []  # ping, content_block_stop and event types newer than this code

    def _merge_usage(self, usage: Mapping[str, Any] | None) -> None:
        # message_delta may carry the input fields as null; a null must not erase a count.
        self.usage.update({k: v for k, v in (usage or {}).items() if v is not None})

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[StreamEvent]:
        kind = block.get("type", "")
        if kind == "tool_use":
            tool = _Block(
                kind,
                tool_index=self.tool_count,
                tool_id=block.get("id", ""),
                tool_name=block.get("name", ""),
            )
            self.tool_count += 1
            self.blocks[index] = tool
            return [ToolCallDelta(tool.tool_index, tool.tool_id, tool.tool_name, "")]
        self.blocks[index] = _Block(kind)
        if kind == "text" and block.get("text"):
            return self._text(self.blocks[index], block["text"])
        return []

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[StreamEvent]:
        block = self.blocks.setdefault(index, _Block("text"))
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._text(block, delta["text"])
        if kind == "input_json_delta" and delta.get("partial_json"):
            self._first_chunk()
            block.text.append(delta["partial_json"])
            return [ToolCallDelta(block.tool_index, None, None, delta["partial_json"])]
        return []  # thinking and signature deltas are not content

    def _text(self, block: _Block, text: str) -> list[StreamEvent]:
        self._first_chunk()
        block.text.append(text)
        return [TextDelta(text)]

    def _first_chunk(self) -> None:
        if self.time_to_first_chunk_s is None:
            self.time_to_first_chunk_s = time.perf_counter() - self.started

    def response(self) -> ModelResponse:
        ordered = [self.blocks[i] for i in sorted(self.blocks)]
        content = "".join("".join(b.text) for b in ordered if b.kind == "text")
        tool_calls = tuple(
            ToolCall(b.tool_id, b.tool_name, parse_tool_arguments("".join(b.text)))
            for b in ordered
            if b.kind == "tool_use"
        )
        output_chars = sum(len("".join(b.text)) for b in ordered)
        usage = (
            parse_usage(self.usage) if self.usage else estimated_usage(self.request, output_chars)
        )
        return ModelResponse(
            provider=self.provider,
            model=self.model,
            id=self.id,
            content=content,
            tool_calls=tool_calls,
            finish_reason=normalise_stop_reason(self.stop_reason),
            provider_finish_reason=self.stop_reason or "",
            usage=usage,
            time_to_first_chunk_s=self.time_to_first_chunk_s,
        )


class AnthropicProvider:
    """Talks to `POST {base_url}/v1/messages`.

    `base_url` is the API root *without* the version segment, as the Anthropic SDKs and
    `ANTHROPIC_BASE_URL` have it: `https://api.anthropic.com`, or the bare address of
    `steward.upstream`. A trailing `/v1` is tolerated and dropped, so both spellings work.
    """

    def __init__(
        self,
        base_url: str = "https://api.anthropic.com",
        api_key: str | None = None,
        *,
        name: str = "anthropic",
        anthropic_version: str = "2023-06-01",
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.default_max_tokens = default_max_tokens
        self._headers = {
            "content-type": "application/json",
            "anthropic-version": anthropic_version,
            **(headers or {}),
        }
        if api_key:
            self._headers["x-api-key"] = api_key
        self._owns_client = client is None
        if client is None:
            import httpx  # loaded by the first provider built, not by importing the dialect

            client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self._client = client

    async def __aenter__(self) -> AnthropicProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def request_body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        system, turns = convert_messages(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            "messages": turns,
        }
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if request.tool_choice is not None:
            body["tool_choice"] = _TOOL_CHOICES[request.tool_choice]
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if stream:
            body["stream"] = True
        return body

    async def complete(self, request: ModelRequest) -> ModelResponse:
        data = await post_json(
            self._client,
            self.url,
            body=self.request_body(request, stream=False),
            headers=self._headers,
            provider=self.name,
            http_error=self._http_error,
        )
        return self._parse_message(data, request)

    def _parse_message(self, data: Mapping[str, Any], request: ModelRequest) -> ModelResponse:
        blocks = data.get("content") or []
        content = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        tool_calls = tuple(
            ToolCall(b.get("id", ""), b.get("name", ""), b.get("input") or {})
            for b in blocks
            if b.get("type") == "tool_use"
        )
        raw_stop = data.get("stop_reason") or ""
        usage = data.get("usage")
        return ModelResponse(
            provider=self.name,
            model=data.get("model") or request.model,
            id=data.get("id") or "",
            content=content,
            tool_calls=tool_calls,
            finish_reason=normalise_stop_reason(raw_stop),
            provider_finish_reason=raw_stop,
            usage=parse_usage(usage) if usage else estimated_usage(request, len(content)),
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.request_body(request, stream=True)
        assembler = _StreamAssembler(self.name, request, time.perf_counter())
        events = post_sse(
            self._client,
            self.url,
            body=body,
            headers=self._headers,
            provider=self.name,
            http_error=self._http_error,
        )
        async with aclosing(events):
            async for event in events:
                data = self._decode_event(event.event, event.data)
                for delta in assembler.feed(event.event, data):
                    yield delta
                if assembler.stopped:
                    break
        if not assembler.stopped:
            raise ModelStreamError(
                f"{self.name} stream ended before message_stop",
                provider=self.name,
                retryable=True,
            )
        yield StreamDone(assembler.response())

    def _decode_event(self, event: str, raw: str) -> Mapping[str, Any]:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ModelStreamError(
                f"{self.name} sent a {event!r} event whose data is not JSON: {raw[:200]!r}",
                provider=self.name,
            ) from exc
        if not isinstance(data, dict):
            raise ModelStreamError(
                f"{self.name} sent a {event!r} event whose data is not an object",
                provider=self.name,
            )
        if event == "error" or data.get("type") == "error":
            error = data.get("error") or {}
            error_type = error.get("type", "error")
            raise ModelStreamError(
                f"{self.name} reported {error_type} mid-stream: {error.get('message', '')}",
                provider=self.name,
                retryable=error_type in _RETRYABLE_STREAM_ERRORS,
            )
        return data

    def _http_error(self, response: httpx.Response) -> ModelHTTPError:
        body = decode_json_body(response.content)
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        message = error.get("message") or (body if isinstance(body, str) else "")[:500]
        error_type = error.get("type")
        details = error.get("details")
        spend_limit = isinstance(details, dict) and (
            details.get("error_code") == "enforced_spend_limit_reached"
        )
        retryable = default_retryable(response.status_code, response.headers)
        # A spend limit set by the account owner will not lift by waiting a few seconds.
        if response.status_code == 429 and spend_limit:
            retryable = False
        return ModelHTTPError(
            f"{self.name} answered HTTP {response.status_code}"
            + (f" ({error_type})" if error_type else "")
            + (f": {message}" if message else ""),
            provider=self.name,
            status_code=response.status_code,
            retryable=retryable,
            retry_after_s=parse_retry_after(response.headers),
            error_type=error_type,
            body=body,
        )
