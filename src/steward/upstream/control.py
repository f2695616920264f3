"""What the upstream has been told to do: the queue of scripted responses, the active faults,
the requests received, and the dialect-neutral `Reply` (and frames) both wire formats render.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "Faults",
    "RecordedRequest",
    "Reply",
    "ReplyToolCall",
    "ScriptedResponse",
    "ScriptedToolCall",
    "ScriptedUsage",
    "UpstreamState",
]


class ScriptedToolCall(BaseModel):
    name: str
    # A string is sent verbatim as the arguments, so clients can be fed malformed JSON.
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None


class ScriptedUsage(BaseModel):
    """In Steward's normalised terms: `input_tokens` is the whole input, cache reads and writes
    included. Each dialect converts to its own wire rules (Anthropic's `input_tokens` excludes
    both; OpenAI's `prompt_tokens` includes reads and has no writes)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


class ScriptedResponse(BaseModel):
    """One answer to the next model request, whichever dialect asks."""

    text: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    usage: ScriptedUsage | None = None  # None: counted from the text, about 4 chars a token
    # The raw wire value; the other dialect's names are translated ("stop" -> "end_turn").
    finish_reason: str | None = None
    model: str | None = None  # None: the model the request asked for
    # False streams no usage at all, like servers that ignore `stream_options`.
    include_usage: bool = True
    # How the OpenAI usage chunk spells "no choices": [] as OpenAI does, or vLLM-style quirks.
    usage_chunk_choices: Literal["empty", "null", "missing"] = "empty"


class FaultVariant(BaseModel):
    """One kind of failure in a mixed storm, picked with probability proportional to `weight`."""

    weight: float = Field(1.0, gt=0)
    error_status: int | None = Field(None, ge=400, le=599)
    error_code: str | None = None
    retry_after_s: float | None = Field(None, ge=0)
    latency_s: float = Field(0.0, ge=0)  # extra delay before answering (client timeouts)
    truncate_after_chunks: int | None = Field(None, ge=0)


class Faults(BaseModel):
    """Misbehaviour applied to every model request until reset.

    Latencies always apply. The error status, truncation and mid-stream error apply to a request
    when a draw from `random.Random(seed)` falls below `probability`, and to at most `times`
    requests when `times` is set.
    """

    latency_s: float = Field(0.0, ge=0)
    first_chunk_delay_s: float = Field(0.0, ge=0)  # before the first content or argument delta
    chunk_delay_s: float = Field(0.0, ge=0)
    error_status: int | None = Field(None, ge=400, le=599)
    # OpenAI `error.code` (e.g. "insufficient_quota") or Anthropic `error.details.error_code`
    # (e.g. "enforced_spend_limit_reached").
    error_code: str | None = None
    error_message: str | None = None
    error_body: dict[str, Any] | None = None  # sent verbatim instead of the dialect's shape
    retry_after_s: float | None = Field(None, ge=0)
    probability: float = Field(1.0, ge=0, le=1)
    seed: int | None = None
    times: int | None = Field(None, ge=0)
    truncate_after_chunks: int | None = Field(None, ge=0)
    stream_error_after_chunks: int | None = Field(None, ge=0)
    # None: "server_error" for OpenAI, "overloaded_error" for Anthropic.
    stream_error_type: str | None = None
    # A storm: each hit request gets one of these instead of the single fault above.
    mix: list[FaultVariant] = Field(default_factory=list)
    # Bill every answer as the longest the request allows, as a provider may: each of its `n`
    # choices at its max_tokens / max_completion_tokens, or at `default_max_output_tokens`
    # (the model's own limit) when it sets neither.
    bill_longest_output: bool = False
    default_max_output_tokens: int = Field(32_768, ge=1)

    def gated(self) -> bool:
        return (
            bool(self.mix)
            or self.error_status is not None
            or self.truncate_after_chunks is not None
            or self.stream_error_after_chunks is not None
        )


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    fault: dict[str, Any] | None = None  # the fault applied to this request, if any

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "fault": self.fault,
        }


@dataclass(frozen=True)
class ReplyToolCall:
    id: str
    name: str
    arguments_json: str

    @property
    def arguments(self) -> Any:
        try:
            return json.loads(self.arguments_json)
        except ValueError:
            return {}


@dataclass(frozen=True)
class Reply:
    """A response before a dialect renders it."""

    id: str
    model: str
    text: str
    tool_calls: tuple[ReplyToolCall, ...]
    usage: ScriptedUsage
    finish_reason: str | None
    include_usage: bool
    usage_chunk_choices: Literal["empty", "null", "missing"]


def message_text(content: Any) -> str:
    """The text of a message's `content`, a string or a list of text parts in either dialect."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _echo(body: dict[str, Any]) -> str:
    user_texts = [
        message_text(m.get("content"))
        for m in body.get("messages") or []
        if isinstance(m, dict) and m.get("role") == "user"
    ]
    last = user_texts[-1].strip() if user_texts else ""
    return f"Echo: {last}" if last else "Echo."


class UpstreamState:
    """Everything the control API changes; one per app, used from its event loop only."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.script: deque[ScriptedResponse] = deque()
        self.requests: list[RecordedRequest] = []
        self.set_faults(Faults())
        self._counter = 0

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._remaining = faults.times

    def draw_fault(self) -> bool:
        """Whether the gated faults hit this request."""
        if not self.faults.gated() or self._remaining == 0:
            return False
        if self._rng.random() >= self.faults.probability:
            return False
        if self._remaining is not None:
            self._remaining -= 1
        return True

    def draw_variant(self) -> FaultVariant | None:
        """For a hit request of a storm, which failure it gets."""
        mix = self.faults.mix
        if not mix:
            return None
        return self._rng.choices(mix, weights=[v.weight for v in mix])[0]

    def _longest_output(self, body: dict[str, Any]) -> int:
        limits = [
            v
            for v in (body.get("max_tokens"), body.get("max_completion_tokens"))
            if isinstance(v, int)
        ]
        n = body.get("n")
        choices = n if isinstance(n, int) else 1
        return choices * max(limits, default=self.faults.default_max_output_tokens)

    def next_id(self, prefix: str) -> str:
        self._counter += 1
        return prefix + hashlib.sha1(f"{prefix}{self._counter}".encode()).hexdigest()[:24]

    def reply(self, body: dict[str, Any], tool_id_prefix: str, id_prefix: str) -> Reply:
        """The next scripted response, or the deterministic echo when the queue is empty."""
        scripted = self.script.popleft() if self.script else ScriptedResponse(text=_echo(body))
        calls = tuple(
            ReplyToolCall(
                id=c.id or self.next_id(tool_id_prefix),
                name=c.name,
                arguments_json=c.arguments
                if isinstance(c.arguments, str)
                else json.dumps(c.arguments, separators=(",", ":")),
            )
            for c in scripted.tool_calls
        )
        usage = scripted.usage or ScriptedUsage(
            input_tokens=max(math.ceil(len(json.dumps(body.get("messages"))) / 4), 1),
            output_tokens=math.ceil(
                (len(scripted.text) + sum(len(c.arguments_json) for c in calls)) / 4
            ),
        )
        if self.faults.bill_longest_output:
            usage = usage.model_copy(update={"output_tokens": self._longest_output(body)})
        return Reply(
            id=self.next_id(id_prefix),
            model=scripted.model or str(body.get("model") or "unknown"),
            text=scripted.text,
            tool_calls=calls,
            usage=usage,
            finish_reason=scripted.finish_reason,
            include_usage=scripted.include_usage,
            usage_chunk_choices=scripted.usage_chunk_choices,
        )


@dataclass(frozen=True)
class Frame:
    """One SSE event on the wire; `content` marks a text or tool-argument delta."""

    data: bytes
    content: bool = False


def split_text(text: str) -> list[str]:
    """Word-sized pieces, whitespace kept, as a tokenizer-driven stream would send them."""
    pieces: list[str] = []
    word = ""
    for char in text:
        if char.isspace() and word and not word[-1].isspace():
            pieces.append(word)
            word = ""
        word += char
    if word:
        pieces.append(word)
    return pieces


def split_arguments(arguments_json: str, size: int = 8) -> list[str]:
    """Tool arguments in small fragments, so clients must reassemble them."""
    return [arguments_json[i : i + size] for i in range(0, len(arguments_json), size)]
