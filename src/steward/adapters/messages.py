"""Chat Completions-shaped messages (what the frameworks' converters make) as Steward messages."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from steward.models.types import Message, ToolCall

__all__ = ["from_chat_messages", "text_of"]


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if isinstance(part, Mapping):
            text = part.get("text") or part.get("refusal")
            if isinstance(text, str):
                parts.append(text)
        elif isinstance(part, str):
            parts.append(part)
    return "\n".join(parts)


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}


def from_chat_messages(messages: Iterable[Mapping[str, Any]]) -> list[Message]:
    """Steward messages for `{"role", "content", "tool_calls", "tool_call_id"}` mappings."""
    result: list[Message] = []
    for message in messages:
        role = message.get("role")
        content = text_of(message.get("content"))
        if role in ("system", "developer"):
            result.append(Message(role="system", content=content))
        elif role == "user":
            result.append(Message(role="user", content=content))
        elif role == "assistant":
            calls = tuple(
                ToolCall(
                    id=str(call.get("id")),
                    name=str(call["function"]["name"]),
                    arguments=_arguments(call["function"].get("arguments")),
                )
                for call in message.get("tool_calls") or ()
            )
            result.append(Message(role="assistant", content=content, tool_calls=calls))
        elif role == "tool":
            result.append(
                Message(role="tool", content=content, tool_call_id=message.get("tool_call_id"))
            )
    return result
