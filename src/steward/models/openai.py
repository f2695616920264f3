"""The OpenAI Chat Completions dialect over httpx, for OpenAI and OpenAI-compatible servers
(vLLM, Ollama, llama.cpp), JSON and streaming, with usage and errors read to the letter.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from steward.errors import ModelHTTPError, ModelStreamError
from steward.models._wire import (
    decode_json_body,
    default_retryable,
    encode_tool_arguments,
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

__all__ = ["OpenAIProvider", "normalise_finish_reason", "parse_usage"]

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the pre-tools name some compatible servers still send
    "content_filter": "content_filter",
}


def normalise_finish_reason(raw: str | None) -> FinishReason:
    return _FINISH_REASONS.get(raw or "", "other")


def parse_usage(usage: Mapping[str, Any]) -> Usage:
    """OpenAI's `prompt_tokens` already includes the cached tokens, so it is the total input."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def _message_json(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            # OpenAI wants null, not "", next to tool calls when the model said nothing.
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": encode_tool_arguments(call.arguments),
                    },
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


@dataclass
class _PendingToolCall:
    id: str | None = None
    name: str = ""
    fragments: list[str] = field(default_factory=list)


class _StreamAssembler:
    """Folds chunks into deltas and, at the end, one `ModelResponse`."""

    def __init__(self, provider: str, request: ModelRequest, started: float) -> None:
        self.provider = provider
        self.request = request
        self.started = started
        self.id = ""
        self.model = request.model
        self.text: list[str] = []
        self.tools: dict[int, _PendingToolCall] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.time_to_first_chunk_s: float | None = None

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        self.id = chunk.get("id") or self.id
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = parse_usage(chunk["usage"])
        events: list[StreamEvent] = []
        # vLLM and others send `choices: null` or leave it out on the usage chunk.
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._first_chunk()
                self.text.append(delta["content"])
                events.append(TextDelta(delta["content"]))
            for position, fragment in enumerate(delta.get("tool_calls") or ()):
                events.append(self._tool_fragment(position, fragment))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _tool_fragment(self, position: int, fragment: Mapping[str, Any]) -> ToolCallDelta:
        index = int(fragment.get("index", position))
        pending = self.tools.setdefault(index, _PendingToolCall())
        function = fragment.get("function") or {}
        arguments = function.get("arguments") or ""
        if fragment.get("id"):
            pending.id = fragment["id"]
        if function.get("name"):
            pending.name += function["name"]
        if arguments:
            self._first_chunk()
            pending.fragments.append(arguments)
        return ToolCallDelta(
            index=index,
            id=fragment.get("id"),
            name=function.get("name"),
            arguments_fragment=arguments,
        )

    def _first_chunk(self) -> None:
        if self.time_to_first_chunk_s is None:
            self.time_to_first_chunk_s = time.perf_counter() - self.started

    def response(self) -> ModelResponse:
        content = "".join(self.text)
        tool_calls = tuple(
            ToolCall(
                id=pending.id or f"call_{index}",
                name=pending.name,
                arguments=parse_tool_arguments("".join(pending.fragments)),
            )
            for index, pending in sorted(self.tools.items())
        )
        output_chars = len(content) + sum(
            len(p.name) + len("".join(p.fragments)) for p in self.tools.values()
        )
        return ModelResponse(
            provider=self.provider,
            model=self.model,
            id=self.id,
            content=content,
            tool_calls=tool_calls,
            finish_reason=normalise_finish_reason(self.finish_reason),
            provider_finish_reason=self.finish_reason or "",
            usage=self.usage or estimated_usage(self.request, output_chars),
            time_to_first_chunk_s=self.time_to_first_chunk_s,
        )


class OpenAIProvider:
    """Talks Chat Completions to `POST {base_url}/chat/completions`.

    `base_url` includes the version segment, as the OpenAI SDKs have it:
    `https://api.openai.com/v1`, `http://localhost:8000/v1`. `api_key=None` sends no
    `Authorization` header, for local servers that take none. `max_tokens_param` names the
    length limit on the wire: OpenAI's reasoning models accept only `max_completion_tokens`,
    while many compatible servers know only `max_tokens`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        name: str = "openai",
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.max_tokens_param = max_tokens_param
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        if client is None:
            import httpx  # loaded by the first provider built, not by importing the dialect

            client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self._client = client

    async def __aenter__(self) -> OpenAIProvider:
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
        return f"{self.base_url}/chat/completions"

    def request_body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message_json(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in request.tools
            ]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.max_tokens is not None:
            body[self.max_tokens_param] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop"] = list(request.stop)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
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
        return self._parse_completion(data, request)

    def _parse_completion(self, data: Mapping[str, Any], request: ModelRequest) -> ModelResponse:
        choices = data.get("choices") or [{}]
        choice = choices[0]
        message = choice.get("message") or {}
        content = message.get("content") or ""
        tool_calls = tuple(
            ToolCall(
                id=call.get("id") or f"call_{position}",
                name=(call.get("function") or {}).get("name", ""),
                arguments=parse_tool_arguments((call.get("function") or {}).get("arguments", "")),
            )
            for position, call in enumerate(message.get("tool_calls") or ())
        )
        raw_finish = choice.get("finish_reason") or ""
        usage = data.get("usage")
        return ModelResponse(
            provider=self.name,
            model=data.get("model") or request.model,
            id=data.get("id") or "",
            content=content,
            tool_calls=tool_calls,
            finish_reason=normalise_finish_reason(raw_finish),
            provider_finish_reason=raw_finish,
            usage=parse_usage(usage) if usage else estimated_usage(request, len(content)),
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        body = self.request_body(request, stream=True)
        assembler = _StreamAssembler(self.name, request, time.perf_counter())
        done = False
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
                if event.data.strip() == "[DONE]":
                    done = True
                    break
                for delta in assembler.feed(self._decode_chunk(event.data)):
                    yield delta
        # A stream that said how it finished is complete even if `[DONE]` never came.
        if not done and assembler.finish_reason is None:
            raise ModelStreamError(
                f"{self.name} stream ended before [DONE] and without a finish_reason",
                provider=self.name,
                retryable=True,
            )
        yield StreamDone(assembler.response())

    def _decode_chunk(self, data: str) -> Mapping[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise ModelStreamError(
                f"{self.name} sent a stream chunk that is not JSON: {data[:200]!r}",
                provider=self.name,
            ) from exc
        if not isinstance(chunk, dict):
            raise ModelStreamError(
                f"{self.name} sent a stream chunk that is not an object: {data[:200]!r}",
                provider=self.name,
            )
        error = chunk.get("error")
        if error:
            detail = error.get("message", error) if isinstance(error, dict) else error
            raise ModelStreamError(
                f"{self.name} reported an error mid-stream: {detail}",
                provider=self.name,
                retryable=isinstance(error, dict) and error.get("type") == "server_error",
            )
        return chunk

    def _http_error(self, response: httpx.Response) -> ModelHTTPError:
        body = decode_json_body(response.content)
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        message = error.get("message") or (body if isinstance(body, str) else "")[:500]
        error_type = error.get("type")
        code = error.get("code")
        retryable = default_retryable(response.status_code, response.headers)
        # Out of credit is not transient: retrying only burns the caller's time.
        if response.status_code == 429 and "insufficient_quota" in (code, error_type):
            retryable = False
        return ModelHTTPError(
            f"{self.name} answered HTTP {response.status_code}"
            + (f" ({code or error_type})" if code or error_type else "")
            + (f": {message}" if message else ""),
            provider=self.name,
            status_code=response.status_code,
            retryable=retryable,
            retry_after_s=parse_retry_after(response.headers),
            error_type=error_type or code,
            body=body,
        )
