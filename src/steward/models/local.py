"""The built-in development model ("steward.local", model "dev"): no key, no weights, no network.
It speaks the `ModelProvider` protocol so agents run end to end before a real model is set up.

THIS IS A STAND-IN, NOT A LANGUAGE MODEL. It understands nothing; it follows fixed rules:

- If the conversation ends with tool results, it answers in plain English by restating them
  ("According to lookup_order (order id 42): status is shipped, ...") and finishes "stop".
- Otherwise it scores each offered tool by word overlap between the user's last message and
  the tool's name, description and parameter names, fills the arguments from the text (numbers
  for integer/number parameters in order, a quoted string or else the whole text for strings,
  false for required booleans), and calls the best tool, finishing "tool_calls". Tools whose
  required parameters cannot be filled are skipped. Read-only tools win ties, and a tool whose
  name says it writes (create, update, delete, send, ...) is only called when the user used
  that verb or a close synonym ("open a ticket" may call `create_ticket`).
- If no tool fits, it replies with a short sentence that echoes the request.

The same request always gets the same response (ids included), and usage is counted in words,
so tests and demos are reproducible. For real answers set `STEWARD_MODEL` to a provider, e.g.
`openai:gpt-4.1-mini` or `anthropic:claude-sonnet-4-5`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

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
    ToolDefinition,
    Usage,
)

__all__ = ["LOCAL_MODEL_NAME", "LOCAL_PROVIDER_NAME", "LocalModel"]

LOCAL_PROVIDER_NAME = "steward.local"
LOCAL_MODEL_NAME = "dev"


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS = _word_set(
    "a an the is are was were be been am i me my mine we our you your it its of to for in on at "
    "by and or but with from as this that these those please what where when which who how why "
    "can could would should will do does did have has had s t any some there here about into "
    "get tell show give let know need want"
)
# Name words that mark a tool as writing, each with the user verbs that permit calling it.
_CREATE = _word_set("create add insert new make open file submit raise start register")
_UPDATE = _word_set("update edit modify change set fix correct rename")
_DELETE = _word_set("delete remove cancel erase drop destroy")
_SEND = _word_set("send post email mail notify message reply write")
_PAY = _word_set("refund pay transfer charge")
_WRITE_VERBS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("create", "add", "insert", "new", "make", "submit", "register"), _CREATE),
    **dict.fromkeys(("update", "edit", "modify", "set", "change", "rename"), _UPDATE),
    **dict.fromkeys(("delete", "remove", "cancel", "erase", "drop"), _DELETE),
    **dict.fromkeys(("send", "post", "email", "notify", "reply", "write"), _SEND),
    **dict.fromkeys(("refund", "pay", "transfer", "charge"), _PAY),
}
# A hyphen glued to a word ("order-42") is not a minus sign.
_NUMBER = re.compile(r"(?<![A-Za-z0-9])-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?:^|\s)'([^']+)'(?=[\s.,;:!?]|$)")
_MISSING = object()


def _words(text: str) -> list[str]:
    """Lower-case word stems: a plural "s" is dropped so "orders" meets "order"."""
    stems = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        stems.append(word)
    return stems


def _count_words(text: str) -> int:
    return len(text.split())


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Candidate:
    score: int
    read_only: bool
    position: int
    tool: ToolDefinition
    arguments: dict[str, Any]

    def rank(self) -> tuple[int, bool, int]:
        return (self.score, self.read_only, -self.position)


def _score(tool: ToolDefinition, user_words: set[str]) -> int:
    """Name words count double: a tool named for the thing asked about is the best guess."""
    name_words = set(_words(tool.name.replace("_", " ")))
    properties = (tool.parameters.get("properties") or {}).keys()
    other_words = set(_words(tool.description + " " + " ".join(properties).replace("_", " ")))
    useful = user_words - _STOPWORDS
    return 2 * len(useful & name_words) + len((useful & other_words) - name_words)


def _write_permitted(tool: ToolDefinition, user_words: set[str]) -> tuple[bool, bool]:
    """(is the tool read-only, may it be called for this text)."""
    verbs = [v for v in _words(tool.name.replace("_", " ")) if v in _WRITE_VERBS]
    if not verbs:
        return True, True
    return False, any(user_words & _WRITE_VERBS[v] for v in verbs)


def _json_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None and isinstance(schema.get("anyOf"), list):
        kinds = [_json_type(s) for s in schema["anyOf"] if s.get("type") != "null"]
        kind = kinds[0] if kinds else "string"
    return str(kind or "string")


class _ArgumentSource:
    """The values a user's text offers, handed out in order."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.numbers = _NUMBER.findall(text)
        self.quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]

    def value(self, schema: Mapping[str, Any], required: bool) -> Any:
        if isinstance(schema.get("enum"), list):
            lowered = self.text.lower()
            match = [v for v in schema["enum"] if str(v).lower() in lowered]
            return match[0] if match else schema.get("default", _MISSING)
        kind = _json_type(schema)
        if kind in ("integer", "number"):
            if not self.numbers:
                return _MISSING
            number = float(self.numbers.pop(0))
            return int(number) if kind == "integer" else number
        if kind == "string":
            if self.quoted:
                return self.quoted.pop(0)
            return self.text if required else _MISSING
        if kind == "boolean" and required:
            return False
        return _MISSING  # arrays and objects cannot be read off a sentence


def _fill_arguments(tool: ToolDefinition, text: str) -> dict[str, Any] | None:
    properties: Mapping[str, Any] = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required") or ())
    source = _ArgumentSource(text)
    arguments: dict[str, Any] = {}
    for name, schema in properties.items():
        value = source.value(schema if isinstance(schema, dict) else {}, name in required)
        if value is _MISSING:
            if name in required:
                return None
            continue
        arguments[name] = value
    return arguments


def _choose_tool(request: ModelRequest, text: str) -> _Candidate | None:
    if request.tool_choice == "none" or not request.tools:
        return None
    user_words = set(_words(text))
    candidates = []
    for position, tool in enumerate(request.tools):
        score = _score(tool, user_words)
        read_only, permitted = _write_permitted(tool, user_words)
        if not permitted or (score == 0 and request.tool_choice != "required"):
            continue
        arguments = _fill_arguments(tool, text)
        if arguments is not None:
            candidates.append(_Candidate(score, read_only, position, tool, arguments))
    return max(candidates, key=_Candidate.rank, default=None)


def _render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "not set"
    if isinstance(value, str | int | float):
        return str(value)
    rendered = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return rendered if len(rendered) <= 80 else rendered[:77] + "..."


def _describe_result(name: str, arguments: Mapping[str, Any], content: str) -> str:
    subject = name
    if arguments:
        subject += (
            " ("
            + ", ".join(f"{k.replace('_', ' ')} {_render_value(v)}" for k, v in arguments.items())
            + ")"
        )
    try:
        value = json.loads(content)
    except ValueError:
        text = content.strip()
        return (
            f'According to {subject}: "{text[:300]}".' if text else f"{subject} returned nothing."
        )
    if isinstance(value, dict):
        fields = [f"{k.replace('_', ' ')} is {_render_value(v)}" for k, v in value.items()]
        body = ", ".join(fields[:8]) + (", ..." if len(fields) > 8 else "")
        return f"According to {subject}: {body or 'no fields'}."
    if isinstance(value, list):
        items = "; ".join(_render_value(v) for v in value[:3])
        more = ", ..." if len(value) > 3 else ""
        return f"According to {subject}: {len(value)} item(s){': ' + items if items else ''}{more}."
    return f"According to {subject}: {_render_value(value)}."


def _answer_from_tool_results(messages: tuple[Message, ...]) -> str:
    calls = {c.id: c for m in messages if m.role == "assistant" for c in m.tool_calls}
    results: list[Message] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.insert(0, message)
    sentences = []
    for result in results:
        call = calls.get(result.tool_call_id or "")
        name = result.name or (call.name if call else "the tool")
        sentences.append(_describe_result(name, call.arguments if call else {}, result.content))
    return " ".join(sentences)


def _echo(text: str) -> str:
    asked = " ".join(text.split())
    if not asked:
        return "Hello from the local development model. Ask me something or offer me tools."
    if len(asked) > 200:
        asked = asked[:197] + "..."
    return f'You asked: "{asked}". (Local development model: no tool matched, so I echo.)'


class LocalModel:
    """The deterministic stand-in described in this module's docstring."""

    name = LOCAL_PROVIDER_NAME
    model = LOCAL_MODEL_NAME

    async def complete(self, request: ModelRequest) -> ModelResponse:
        return self._respond(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        response = self._respond(request)
        first_chunk_s: float | None = None
        for event in self._deltas(response):
            if first_chunk_s is None:
                first_chunk_s = time.perf_counter() - started
            yield event
            await asyncio.sleep(0)  # let other tasks run, as a network stream would
        yield StreamDone(replace(response, time_to_first_chunk_s=first_chunk_s))

    async def aclose(self) -> None:
        return None

    @staticmethod
    def _deltas(response: ModelResponse) -> Iterator[StreamEvent]:
        for word in re.findall(r"\S+\s*", response.content):
            yield TextDelta(word)
        for index, call in enumerate(response.tool_calls):
            yield ToolCallDelta(index, call.id, call.name, json.dumps(call.arguments))

    def _respond(self, request: ModelRequest) -> ModelResponse:
        seed = _digest(
            json.dumps([m.to_json() for m in request.messages], sort_keys=True),
            json.dumps([t.name for t in request.tools]),
        )
        content, finish = "", "stop"
        tool_calls: tuple[ToolCall, ...] = ()
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role == "tool":
            content = _answer_from_tool_results(request.messages)
        else:
            text = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
            chosen = _choose_tool(request, text)
            if chosen is None:
                content = _echo(text)
            else:
                call_id = "call_" + _digest(seed, chosen.tool.name)[:24]
                tool_calls = (ToolCall(call_id, chosen.tool.name, chosen.arguments),)
                finish = "tool_calls"
        finish_reason: FinishReason = "tool_calls" if finish == "tool_calls" else "stop"
        if request.max_tokens is not None and _count_words(content) > request.max_tokens:
            content = " ".join(content.split()[: request.max_tokens])
            finish_reason = finish = "length"
        return ModelResponse(
            provider=self.name,
            model=self.model,
            id="local-" + seed[:20],
            content=content,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            provider_finish_reason=finish,
            usage=_usage(request, content, tool_calls),
        )


def _usage(request: ModelRequest, content: str, tool_calls: tuple[ToolCall, ...]) -> Usage:
    """Words stand in for tokens: deterministic, and the right order of magnitude."""
    input_words = sum(
        _count_words(m.content) + sum(_count_words(json.dumps(c.arguments)) for c in m.tool_calls)
        for m in request.messages
    ) + sum(_count_words(f"{t.name} {t.description}") for t in request.tools)
    output_words = _count_words(content) + sum(
        1 + _count_words(json.dumps(c.arguments)) for c in tool_calls
    )
    return Usage(input_tokens=input_words, output_tokens=output_words)
