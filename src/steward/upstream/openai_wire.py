"""OpenAI Chat Completions as it looks on the wire: the JSON body, the `data:` chunk stream
(role chunk, deltas, finish chunk, the `choices: []` usage chunk, `[DONE]`) and error bodies.
"""

from __future__ import annotations

import json
import time
from typing import Any

from steward.upstream.control import Frame, Reply, ScriptedUsage, split_arguments, split_text

__all__ = ["completion_json", "error_json", "stream_error_frame", "stream_frames"]

_FROM_ANTHROPIC = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found"}
_ERROR_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    408: "Request timed out.",
    409: "Conflict.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request.",
    503: "The engine is currently overloaded, please try again later.",
}
_INSUFFICIENT_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details."
)
_FINGERPRINT = "fp_steward_upstream"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _encode(body: dict[str, Any]) -> bytes:
    return f"data: {_dumps(body)}\n\n".encode()


def finish_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return _FROM_ANTHROPIC.get(reply.finish_reason, reply.finish_reason)
    return "tool_calls" if reply.tool_calls else "stop"


def usage_json(usage: ScriptedUsage) -> dict[str, Any]:
    """`prompt_tokens` includes the cached tokens; OpenAI has no cache-write count."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_json(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or None,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(reply),
            }
        ],
        "usage": usage_json(reply.usage),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def stream_frames(reply: Reply, *, include_usage: bool) -> list[Frame]:
    """Every chunk in order. With `include_usage` every chunk carries `"usage": null` and an
    extra chunk with `choices: []` and the usage precedes `[DONE]`, as OpenAI sends it."""
    created = int(time.time())
    send_usage = include_usage and reply.include_usage

    def envelope(choices: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = None
        return body

    def chunk(choices: list[dict[str, Any]]) -> bytes:
        return _encode(envelope(choices))

    def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

    first = {"role": "assistant", "content": None if reply.tool_calls else "", "refusal": None}
    frames = [Frame(chunk(delta(first)))]
    frames += [Frame(chunk(delta({"content": piece})), True) for piece in split_text(reply.text)]
    for index, call in enumerate(reply.tool_calls):
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(Frame(chunk(delta({"tool_calls": [opening]}))))
        for fragment in split_arguments(call.arguments_json):
            piece = {"index": index, "function": {"arguments": fragment}}
            frames.append(Frame(chunk(delta({"tool_calls": [piece]})), True))
    frames.append(Frame(chunk(delta({}, finish_reason(reply)))))
    if send_usage:
        final = envelope([])
        final["usage"] = usage_json(reply.usage)
        if reply.usage_chunk_choices == "null":
            final["choices"] = None
        elif reply.usage_chunk_choices == "missing":
            del final["choices"]
        frames.append(Frame(_encode(final)))
    frames.append(Frame(b"data: [DONE]\n\n"))
    return frames


def _error_type(status: int, code: str | None) -> str:
    if code == "insufficient_quota":
        return "insufficient_quota"
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return _ERROR_TYPES.get(status, "invalid_request_error")


def error_json(status: int, code: str | None, message: str | None) -> dict[str, Any]:
    if code is None and status == 429:
        code = "rate_limit_exceeded"
    default = _INSUFFICIENT_QUOTA_MESSAGE if code == "insufficient_quota" else None
    return {
        "error": {
            "message": message or default or _ERROR_MESSAGES.get(status, "Request failed."),
            "type": _error_type(status, code),
            "param": None,
            "code": code,
        }
    }


def stream_error_frame(error_type: str | None, message: str | None) -> bytes:
    """What OpenAI sends when a stream fails after the 200: a `data:` line holding `error`."""
    error = {
        "message": message or "The server had an error while processing your request.",
        "type": error_type or "server_error",
        "param": None,
        "code": None,
    }
    return _encode({"error": error})
