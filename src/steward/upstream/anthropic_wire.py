"""Anthropic Messages as it looks on the wire: the JSON message, the typed event stream
(message_start, blocks, ping, message_delta with cumulative usage, message_stop) and errors.
"""

from __future__ import annotations

import json
from typing import Any

from steward.upstream.control import Frame, Reply, ScriptedUsage, split_arguments, split_text

__all__ = ["error_json", "message_json", "stream_error_frame", "stream_frames"]

_FROM_OPENAI = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()


def stop_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return _FROM_OPENAI.get(reply.finish_reason, reply.finish_reason)
    return "tool_use" if reply.tool_calls else "end_turn"


def usage_json(usage: ScriptedUsage, *, output_tokens: int | None = None) -> dict[str, Any]:
    """`input_tokens` excludes cache reads and writes; all writes count as 5-minute writes."""
    uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def message_json(reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    content += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in reply.tool_calls
    ]
    return {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": stop_reason(reply),
        "stop_sequence": None,
        "usage": usage_json(reply.usage),
    }


def stream_frames(reply: Reply) -> list[Frame]:
    """The events in the order Anthropic sends them, a `ping` after the first block opens.

    `message_start` reports the input usage and one output token; `message_delta` the
    cumulative output count. `include_usage=False` leaves usage out of both.
    """
    start = message_json(reply) | {"content": [], "stop_reason": None}
    if reply.include_usage:
        start["usage"] = usage_json(reply.usage, output_tokens=1)
    else:
        del start["usage"]
    frames = [Frame(_event("message_start", {"type": "message_start", "message": start}))]
    index = 0
    if reply.text or not reply.tool_calls:
        frames.append(_block_start(index, {"type": "text", "text": ""}))
        frames.append(Frame(_event("ping", {"type": "ping"})))
        for piece in split_text(reply.text):
            delta = {"type": "text_delta", "text": piece}
            frames.append(_block_delta(index, delta, content=True))
        frames.append(_block_stop(index))
        index += 1
    for call in reply.tool_calls:
        frames.append(
            _block_start(index, {"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        )
        if index == 0:
            frames.append(Frame(_event("ping", {"type": "ping"})))
        frames.append(_block_delta(index, {"type": "input_json_delta", "partial_json": ""}))
        for fragment in split_arguments(call.arguments_json):
            delta = {"type": "input_json_delta", "partial_json": fragment}
            frames.append(_block_delta(index, delta, content=True))
        frames.append(_block_stop(index))
        index += 1
    message_delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason(reply), "stop_sequence": None},
    }
    if reply.include_usage:
        message_delta["usage"] = {"output_tokens": reply.usage.output_tokens}
    frames.append(Frame(_event("message_delta", message_delta)))
    frames.append(Frame(_event("message_stop", {"type": "message_stop"})))
    return frames


def _block_start(index: int, block: dict[str, Any]) -> Frame:
    data = {"type": "content_block_start", "index": index, "content_block": block}
    return Frame(_event("content_block_start", data))


def _block_delta(index: int, delta: dict[str, Any], *, content: bool = False) -> Frame:
    data = {"type": "content_block_delta", "index": index, "delta": delta}
    return Frame(_event("content_block_delta", data), content)


def _block_stop(index: int) -> Frame:
    return Frame(_event("content_block_stop", {"type": "content_block_stop", "index": index}))


def error_json(
    status: int, code: str | None, message: str | None, request_id: str
) -> dict[str, Any]:
    error_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {
        "type": error_type,
        "message": message or _ERROR_MESSAGES.get(error_type, "Request failed."),
    }
    if code is not None:
        error["details"] = {"error_code": code}
    return {"type": "error", "error": error, "request_id": request_id}


def stream_error_frame(error_type: str | None, message: str | None, request_id: str) -> bytes:
    """An `event: error` after the HTTP 200, as Anthropic sends when it overloads mid-stream."""
    kind = error_type or "overloaded_error"
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or _ERROR_MESSAGES.get(kind, "Error")},
        "request_id": request_id,
    }
    return _event("error", body)
