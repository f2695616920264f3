"""The proxy's hot path: forward an OpenAI or Anthropic request body as it came (so every field
the client sent reaches the provider), and read usage, finish reasons and the first chunk off
the answer while handing its bytes back untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from steward.errors import ModelError, ModelHTTPError, ModelStreamError
from steward.models.anthropic import parse_usage as anthropic_usage
from steward.models.deployments import Target
from steward.models.openai import parse_usage as openai_usage
from steward.models.sse import SSEEventSplitter
from steward.models.types import Usage

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "ForwardedStream",
    "ProxyDialect",
    "UpstreamHTTPError",
    "forward_json",
    "open_stream",
    "with_output_limit",
]

ProxyDialect = Literal["openai", "anthropic"]

# Client headers the provider needs to see (API version and beta switches), by dialect.
_FORWARDED = {
    "openai": ("openai-organization", "openai-project"),
    "anthropic": ("anthropic-version", "anthropic-beta"),
}
# Upstream answer headers worth passing back to the client.
RELAYED_HEADERS = (
    "retry-after",
    "retry-after-ms",
    "x-request-id",
    "request-id",
    "openai-processing-ms",
    "anthropic-ratelimit-requests-remaining",
    "x-ratelimit-remaining-requests",
)


class UpstreamHTTPError(ModelHTTPError):
    """An error status from the provider, with its raw body and headers kept for relaying."""

    def __init__(self, message: str, *, raw: bytes, headers: Mapping[str, str], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw = raw
        self.headers = dict(headers)


def _url(target: Target) -> str:
    base = target.deployment.base_url
    if target.deployment.dialect == "anthropic":
        return base.removesuffix("/v1") + "/v1/messages"
    return base + "/chat/completions"


def upstream_headers(target: Target, client_headers: Mapping[str, str]) -> dict[str, str]:
    dialect = target.deployment.dialect
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    for name in _FORWARDED.get(dialect, ()):
        if name in client_headers:
            headers[name] = client_headers[name]
    key = target.deployment.api_key
    if dialect == "anthropic":
        headers.setdefault("anthropic-version", "2023-06-01")
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(float(value) * scale, 0.0)
            except ValueError:
                continue
    return None


def _http_error(
    target: Target, status: int, raw: bytes, headers: Mapping[str, str]
) -> UpstreamHTTPError:
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    name = target.deployment.name
    return UpstreamHTTPError(
        f"{name} answered HTTP {status}: {str(error.get('message') or body)[:300]}",
        raw=raw,
        headers={k.lower(): v for k, v in headers.items()},
        provider=target.deployment.provider_name,
        status_code=status,
        retryable=status in (408, 429) or status >= 500,
        retry_after_s=_retry_after({k.lower(): v for k, v in headers.items()}),
        error_type=error.get("code") or error.get("type"),
        body=body,
    )


def with_output_limit(
    body: dict[str, Any], targets: Sequence[Target], tokens: int
) -> dict[str, Any]:
    """The request with the output limit the gateway reserved for, when it set none: OpenAI's
    own API takes `max_completion_tokens` (its reasoning models refuse `max_tokens`); other
    OpenAI-compatible servers know `max_tokens`."""
    openai_only = all(t.deployment.provider_name == "openai" for t in targets)
    return {**body, "max_completion_tokens" if openai_only else "max_tokens": tokens}


def _transport_error(target: Target, exc: BaseException, *, streaming: bool) -> ModelError:
    kind = "timed out" if isinstance(exc, TimeoutError) else f"failed: {type(exc).__name__}"
    message = f"{target.deployment.name} request {kind}: {exc}".rstrip(": ")
    if streaming:
        return ModelStreamError(message, provider=target.deployment.provider_name, retryable=True)
    return ModelError(message, provider=target.deployment.provider_name, retryable=True)


@dataclass
class Answer:
    """A complete JSON answer with what the gateway needs from it."""

    status: int
    raw: bytes
    headers: dict[str, str]
    usage: Usage | None
    model: str | None
    id: str
    finish_reasons: list[str]


def read_answer(
    dialect: ProxyDialect, data: Mapping[str, Any]
) -> tuple[Usage | None, str | None, str, list[str]]:
    usage_json = data.get("usage")
    if dialect == "openai":
        usage = openai_usage(usage_json) if isinstance(usage_json, dict) else None
        reasons = [
            str(c.get("finish_reason"))
            for c in data.get("choices") or ()
            if isinstance(c, dict) and c.get("finish_reason")
        ]
    else:
        usage = anthropic_usage(usage_json) if isinstance(usage_json, dict) else None
        reasons = [str(data["stop_reason"])] if data.get("stop_reason") else []
    return usage, data.get("model"), str(data.get("id") or ""), reasons


async def forward_json(
    target: Target, body: dict[str, Any], client_headers: Mapping[str, str]
) -> Answer:
    """POST the body (with the target's model) and read the whole answer."""
    import aiohttp  # the first proxy call loads it, not the start of the process

    payload = json.dumps({**body, "model": target.model}, ensure_ascii=False).encode()
    session = target.deployment.session()
    try:
        async with session.post(
            _url(target), data=payload, headers=upstream_headers(target, client_headers)
        ) as response:
            raw = await response.read()
            headers = {k.lower(): v for k, v in response.headers.items()}
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _transport_error(target, exc, streaming=False) from exc
    if status >= 400:
        raise _http_error(target, status, raw, headers)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ModelError(
            f"{target.deployment.name} answered {status} with a body that is not JSON",
            provider=target.deployment.provider_name,
            retryable=True,
        ) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{target.deployment.name} answered a non-object", retryable=True)
    usage, model, ident, reasons = read_answer(target.deployment.dialect, data)  # type: ignore[arg-type]
    return Answer(status, raw, headers, usage, model, ident, reasons)


@dataclass
class StreamState:
    """What the stream said so far: usage, finish reasons, whether it ended properly."""

    dialect: ProxyDialect
    usage_json: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    id: str = ""
    finish_reasons: list[str] = field(default_factory=list)
    complete: bool = False
    content_chars: int = 0
    error: str | None = None

    def usage(self, input_bound_tokens: int) -> Usage:
        if self.usage_json:
            if self.dialect == "openai":
                return openai_usage(self.usage_json)
            return anthropic_usage(self.usage_json)
        # The stream never said: estimate, and say so.
        return Usage(
            input_tokens=max(input_bound_tokens // 4, 1),
            output_tokens=(self.content_chars + 3) // 4,
            estimated=True,
        )


class ForwardedStream:
    """An upstream SSE answer that has produced its first event (until then a failure is
    retried). Iterate `events()` for `(raw bytes, is_content)`; read `state` afterwards."""

    def __init__(
        self,
        target: Target,
        response: aiohttp.ClientResponse,
        first: list[bytes],
        rest: AsyncIterator[bytes],
        state: StreamState,
        hide_usage_chunk: bool,
    ) -> None:
        self.target = target
        self.response = response
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self._first = first
        self._rest = rest
        self.state = state
        self._hide_usage_chunk = hide_usage_chunk

    async def events(self) -> AsyncIterator[tuple[bytes, bool]]:
        """Each event's bytes and whether it carried content (for time to first chunk). A
        transport failure mid-stream raises ModelStreamError."""
        import aiohttp

        try:
            for raw in self._first:
                shown, content = self._inspect(raw)
                if shown:
                    yield raw, content
            async for raw in self._rest:
                shown, content = self._inspect(raw)
                if shown:
                    yield raw, content
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(self.target, exc, streaming=True) from exc

    def _inspect(self, raw: bytes) -> tuple[bool, bool]:
        return inspect_event(self.state, raw, hide_usage_chunk=self._hide_usage_chunk)

    def close(self) -> None:
        self.response.close()


def inspect_event(state: StreamState, raw: bytes, *, hide_usage_chunk: bool) -> tuple[bool, bool]:
    """Update `state` from one SSE event; returns (forward it, it carried content)."""
    event_name = ""
    data_lines: list[str] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.startswith("data:"):
            data_lines.append(line[5:].lstrip(" "))
        elif line.startswith("event:"):
            event_name = line[6:].strip()
    data = "\n".join(data_lines)
    if not data:
        return True, False
    if state.dialect == "openai":
        return _inspect_openai(state, data, hide_usage_chunk)
    return True, _inspect_anthropic(state, event_name, data)


def _inspect_openai(state: StreamState, data: str, hide_usage_chunk: bool) -> tuple[bool, bool]:
    if data.strip() == "[DONE]":
        state.complete = True
        return True, False
    try:
        chunk = json.loads(data)
    except ValueError:
        return True, False
    if not isinstance(chunk, dict):
        return True, False
    if chunk.get("error"):
        state.error = str(chunk["error"])
        return True, False
    state.id = chunk.get("id") or state.id
    state.model = chunk.get("model") or state.model
    content = False
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        arguments = "".join(
            (c.get("function") or {}).get("arguments") or "" for c in delta.get("tool_calls") or ()
        )
        if text or arguments:
            content = True
            state.content_chars += len(text) + len(arguments)
        if choice.get("finish_reason"):
            state.finish_reasons.append(choice["finish_reason"])
    if chunk.get("usage"):
        state.usage_json = chunk["usage"]
        if hide_usage_chunk and not chunk.get("choices"):
            return False, False  # the client did not ask for it; we did, to account
    return True, content


def _inspect_anthropic(state: StreamState, event: str, data: str) -> bool:
    try:
        payload = json.loads(data)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    kind = payload.get("type") or event
    if kind == "message_start":
        message = payload.get("message") or {}
        state.id = message.get("id") or state.id
        state.model = message.get("model") or state.model
        state.usage_json.update(
            {k: v for k, v in (message.get("usage") or {}).items() if v is not None}
        )
    elif kind == "content_block_delta":
        delta = payload.get("delta") or {}
        piece = delta.get("text") or delta.get("partial_json") or delta.get("thinking") or ""
        state.content_chars += len(piece)
        return bool(piece)
    elif kind == "message_delta":
        reason = (payload.get("delta") or {}).get("stop_reason")
        if reason:
            state.finish_reasons.append(reason)
        state.usage_json.update(
            {k: v for k, v in (payload.get("usage") or {}).items() if v is not None}
        )
    elif kind == "message_stop":
        state.complete = True
    elif kind == "error":
        state.error = str(payload.get("error"))
    return False


async def _split_events(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """SSE events as raw bytes, separators included, however the network chunked them (linear
    in the bytes received; an event past the size cap raises SSEEventTooLarge)."""
    splitter = SSEEventSplitter()
    async for chunk in content.iter_any():
        for event in splitter.feed(chunk):
            yield event
    last = splitter.end_of_stream()
    if last.strip():
        yield last  # an unterminated last event: forward it; the state decides completeness


async def open_stream(
    target: Target,
    body: dict[str, Any],
    client_headers: Mapping[str, str],
    *,
    first_event_timeout_s: float | None,
) -> ForwardedStream:
    """Open the upstream stream and wait for its first event; failures so far are retryable,
    because nothing has reached the client yet."""
    import aiohttp

    dialect: ProxyDialect = "anthropic" if target.deployment.dialect == "anthropic" else "openai"
    sent = {**body, "model": target.model, "stream": True}
    hide_usage = False
    if dialect == "openai":
        options = dict(sent.get("stream_options") or {})
        hide_usage = not options.get("include_usage")
        options["include_usage"] = True  # always ask: every call must be priced exactly
        sent["stream_options"] = options
    session = target.deployment.session()
    started = time.perf_counter()
    try:
        response = await session.post(
            _url(target),
            data=json.dumps(sent, ensure_ascii=False).encode(),
            headers=upstream_headers(target, client_headers),
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _transport_error(target, exc, streaming=False) from exc
    headers = {k.lower(): v for k, v in response.headers.items()}
    if response.status >= 400:
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(target, exc, streaming=False) from exc
        finally:
            response.release()
        raise _http_error(target, response.status, raw, headers)
    events = _split_events(response.content)
    state = StreamState(dialect)
    first: list[bytes] = []
    try:
        async with asyncio.timeout(first_event_timeout_s):
            first.append(await anext(events))
    except StopAsyncIteration:
        response.close()
        raise ModelStreamError(
            f"{target.deployment.name} closed the stream before its first event",
            provider=target.deployment.provider_name,
            retryable=True,
        ) from None
    except TimeoutError as exc:
        response.close()
        waited = time.perf_counter() - started
        raise ModelError(
            f"{target.deployment.name} sent no first event within {waited:.1f}s",
            provider=target.deployment.provider_name,
            retryable=True,
        ) from exc
    except aiohttp.ClientError as exc:
        response.close()
        raise _transport_error(target, exc, streaming=False) from exc
    except ModelError:  # the first event was too large
        response.close()
        raise
    return ForwardedStream(target, response, first, events, state, hide_usage)
