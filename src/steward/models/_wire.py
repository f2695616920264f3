"""Plumbing shared by the HTTP provider dialects (OpenAI, Anthropic): the JSON and SSE calls
with errors translated, retry hints, tool-argument decoding and the rough token estimate.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncGenerator, Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from steward.errors import ModelError, ModelHTTPError, ModelStreamError
from steward.models.sse import ServerSentEvent, aiter_sse
from steward.models.types import ModelRequest, Usage

if TYPE_CHECKING:
    import httpx

# httpx is imported by the functions that make calls: a process that never calls a provider
# over HTTP (the local model, the proxy's own client) does not load it.
HTTPErrorReader = Callable[["httpx.Response"], ModelHTTPError]

# The official SDKs retry these statuses (and every 5xx); see REFERENCE "Retry conventions".
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def default_retryable(status_code: int, headers: httpx.Headers) -> bool:
    """The SDK rule: 408/409/429/5xx, overridden by an explicit `x-should-retry` header."""
    should_retry = headers.get("x-should-retry", "").strip().lower()
    if should_retry == "true":
        return True
    if should_retry == "false":
        return False
    return status_code in RETRYABLE_STATUSES or status_code >= 500


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def decode_json_body(content: bytes) -> Any:
    """The body as JSON, or its text when it is not JSON (proxies answer HTML error pages)."""
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", errors="replace")


def parse_tool_arguments(raw: str) -> dict[str, Any]:
    """Decode streamed/serialised tool arguments; malformed JSON is kept as `{"_raw": ...}`.

    Models do emit broken JSON now and then; the tool layer reports that back to the model
    instead of the whole run crashing here.
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def encode_tool_arguments(arguments: dict[str, Any]) -> str:
    """The inverse of `parse_tool_arguments`: malformed arguments go back to the model verbatim."""
    raw = arguments.get("_raw")
    if len(arguments) == 1 and isinstance(raw, str):
        return raw
    return json.dumps(arguments, ensure_ascii=False)


def estimate_tokens(text_chars: int) -> int:
    """About four characters per token, the usual rule of thumb for English with BPE."""
    return math.ceil(text_chars / 4) if text_chars > 0 else 0


def request_chars(request: ModelRequest) -> int:
    """Characters a request puts in front of the model, for estimating its input tokens."""
    total = 0
    for message in request.messages:
        total += len(message.content)
        for call in message.tool_calls:
            total += len(call.name) + len(json.dumps(call.arguments))
    for tool in request.tools:
        total += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    return total


def estimated_usage(request: ModelRequest, output_chars: int) -> Usage:
    """Usage for a response whose provider never reported any (a cut or usage-less stream)."""
    return Usage(
        input_tokens=estimate_tokens(request_chars(request)),
        output_tokens=estimate_tokens(output_chars),
        estimated=True,
    )


def transport_error(provider: str, exc: httpx.HTTPError, *, streaming: bool) -> ModelError:
    """Translate an httpx failure; connection problems and timeouts are worth a retry."""
    import httpx

    kind = type(exc).__name__
    detail = str(exc) or kind
    if streaming:
        return ModelStreamError(
            f"{provider} stream broke: {kind}: {detail}", provider=provider, retryable=True
        )
    retryable = isinstance(exc, httpx.TransportError)
    return ModelError(
        f"{provider} request failed: {kind}: {detail}", provider=provider, retryable=retryable
    )


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    provider: str,
    http_error: HTTPErrorReader,
) -> dict[str, Any]:
    """POST a JSON body and return the JSON object answered; every failure is a ModelError."""
    import httpx

    try:
        response = await client.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise transport_error(provider, exc, streaming=False) from exc
    if response.status_code >= 400:
        raise http_error(response)
    data = decode_json_body(response.content)
    if not isinstance(data, dict):
        raise ModelError(
            f"{provider} answered {response.status_code} with a body that is not a JSON object: "
            f"{str(data)[:200]!r}",
            provider=provider,
        )
    return data


async def post_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    provider: str,
    http_error: HTTPErrorReader,
) -> AsyncGenerator[ServerSentEvent, None]:
    """POST a JSON body and yield the SSE events of the answer.

    An error status raises before any event. A transport failure before the answer is a
    ModelError; after it, a ModelStreamError. Wrap in `contextlib.aclosing` so stopping early
    releases the connection at once.
    """
    import httpx

    opened = False
    try:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise http_error(response)
            opened = True
            async for event in aiter_sse(response.aiter_bytes()):
                yield event
    except httpx.HTTPError as exc:
        raise transport_error(provider, exc, streaming=opened) from exc
