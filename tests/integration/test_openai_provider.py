"""OpenAIProvider against the wire-compatible upstream over real HTTP (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from steward.errors import ModelError, ModelHTTPError, ModelStreamError
from steward.models.openai import OpenAIProvider
from steward.models.types import (
    Message,
    ModelRequest,
    ModelResponse,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
)
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread

WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
REQUEST = ModelRequest(
    model="gpt-4.1-mini",
    messages=(Message("system", "Be brief."), Message("user", "Weather in Paris?")),
    tools=(WEATHER,),
)


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture
def upstream(upstream_url: str) -> UpstreamControl:
    control = UpstreamControl(upstream_url)
    control.reset()
    return control


@pytest.fixture
async def provider(upstream_url: str) -> AsyncIterator[OpenAIProvider]:
    async with OpenAIProvider(f"{upstream_url}/v1", "sk-test-key") as provider:
        yield provider


async def collect(provider: OpenAIProvider, request: ModelRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def drain(events: AsyncIterator[StreamEvent], into: list[StreamEvent]) -> None:
    async for event in events:
        into.append(event)


def final(events: list[StreamEvent]) -> ModelResponse:
    last = events[-1]
    assert isinstance(last, StreamDone)
    return last.response


async def test_complete_returns_text_and_normalised_finish_reason(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "Sunny, 21 °C.", "model": "gpt-4.1-mini-2025-04-14"})

    response = await provider.complete(REQUEST)

    assert response.provider == "openai"
    assert response.model == "gpt-4.1-mini-2025-04-14"
    assert response.id.startswith("chatcmpl-")
    assert response.content == "Sunny, 21 °C."
    assert response.tool_calls == ()
    assert (response.finish_reason, response.provider_finish_reason) == ("stop", "stop")
    assert response.time_to_first_chunk_s is None


async def test_prompt_tokens_include_cached_tokens_so_input_is_prompt_tokens(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    usage = {"input_tokens": 1200, "cache_read_tokens": 1024, "output_tokens": 80}
    upstream.script({"text": "a", "usage": usage | {"reasoning_tokens": 64}})
    upstream.script({"text": "b", "usage": usage})

    completed = await provider.complete(REQUEST)
    streamed = final(await collect(provider, REQUEST))

    for result in (completed.usage, streamed.usage):
        assert result.input_tokens == 1200
        assert result.cache_read_tokens == 1024
        assert result.cache_write_tokens == 0
        assert result.output_tokens == 80
        assert result.estimated is False
    assert completed.usage.reasoning_tokens == 64


async def test_request_carries_bearer_key_and_converted_messages(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    request = ModelRequest(
        model="gpt-4.1-mini",
        messages=(
            Message("system", "Be brief."),
            Message("user", "Weather in Paris?"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", '{"temp_c": 21}', tool_call_id="call_1", name="get_weather"),
        ),
        tools=(WEATHER,),
        tool_choice="auto",
        max_tokens=50,
        temperature=0.2,
        stop=("END",),
    )

    await provider.complete(request)

    [sent] = upstream.requests()
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-test-key"
    body = sent["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert (body["tool_choice"], body["max_tokens"], body["temperature"]) == ("auto", 50, 0.2)
    assert body["stop"] == ["END"]
    assert "stream" not in body


async def test_max_completion_tokens_param_is_used_when_configured(
    upstream_url: str, upstream: UpstreamControl
) -> None:
    async with OpenAIProvider(
        f"{upstream_url}/v1", "k", max_tokens_param="max_completion_tokens"
    ) as provider:
        await provider.complete(ModelRequest("gpt-4.1", (Message("user", "hi"),), max_tokens=9))

    body = upstream.requests()[0]["body"]
    assert body["max_completion_tokens"] == 9
    assert "max_tokens" not in body


async def test_no_api_key_sends_no_authorization_header(
    upstream_url: str, upstream: UpstreamControl
) -> None:
    async with OpenAIProvider(f"{upstream_url}/v1", None, name="openai-compatible") as provider:
        response = await provider.complete(ModelRequest("qwen3", (Message("user", "hi"),)))

    assert response.provider == "openai-compatible"
    assert "authorization" not in upstream.requests()[0]["headers"]


async def test_stream_yields_text_deltas_then_the_assembled_response(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "It is sunny in Paris."})

    events = await collect(provider, REQUEST)

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    assert "".join(deltas) == "It is sunny in Paris."
    response = final(events)
    assert response.content == "It is sunny in Paris."
    assert response.finish_reason == "stop"
    body = upstream.requests()[0]["body"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_time_to_first_chunk_is_measured_to_the_first_content_delta_not_the_role_chunk(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "Later."})
    upstream.faults(first_chunk_delay_s=0.3)

    response = final(await collect(provider, REQUEST))

    assert response.time_to_first_chunk_s is not None
    assert response.time_to_first_chunk_s >= 0.3


async def test_tool_call_arguments_are_reassembled_from_fragments_in_both_modes(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    calls = [
        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        {"name": "get_weather", "arguments": {"city": "Reykjavík"}, "id": "call_fixed"},
    ]
    upstream.script({"tool_calls": calls}, {"tool_calls": calls})

    completed = await provider.complete(REQUEST)
    events = await collect(provider, REQUEST)

    fragments = [e for e in events if isinstance(e, ToolCallDelta) and e.arguments_fragment]
    assert len({e.index for e in fragments}) == 2
    assert len(fragments) > 2
    streamed = final(events)
    for response in (completed, streamed):
        assert response.finish_reason == "tool_calls"
        assert [c.name for c in response.tool_calls] == ["get_weather", "get_weather"]
        assert response.tool_calls[0].arguments == {"city": "Paris", "unit": "celsius"}
        assert response.tool_calls[1] == ToolCall(
            "call_fixed", "get_weather", {"city": "Reykjavík"}
        )
        assert response.tool_calls[0].id.startswith("call_")


async def test_malformed_tool_arguments_are_kept_raw_instead_of_crashing(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    broken = {"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Par'}]}
    upstream.script(broken, broken)

    completed = await provider.complete(REQUEST)
    streamed = final(await collect(provider, REQUEST))

    for response in (completed, streamed):
        assert response.tool_calls[0].arguments == {"_raw": '{"city": "Par'}


@pytest.mark.parametrize("choices", ["empty", "null", "missing"])
async def test_usage_chunk_is_read_whether_choices_is_empty_null_or_missing(
    provider: OpenAIProvider, upstream: UpstreamControl, choices: str
) -> None:
    usage = {"input_tokens": 30, "output_tokens": 5}
    upstream.script({"text": "ok", "usage": usage, "usage_chunk_choices": choices})

    response = final(await collect(provider, REQUEST))

    assert (response.usage.input_tokens, response.usage.output_tokens) == (30, 5)
    assert response.content == "ok"


async def test_stream_without_usage_reports_an_estimate(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "x" * 40, "include_usage": False})

    response = final(await collect(provider, REQUEST))

    assert response.usage.estimated is True
    assert response.usage.output_tokens == 10  # 40 chars / 4
    assert response.usage.input_tokens > 0


async def test_stream_cut_after_finish_reason_completes_with_estimated_usage(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    # role chunk, "Done.", finish chunk: then the connection ends before usage and [DONE].
    upstream.script({"text": "Done."})
    upstream.faults(truncate_after_chunks=3)

    response = final(await collect(provider, REQUEST))

    assert response.content == "Done."
    assert response.finish_reason == "stop"
    assert response.usage.estimated is True


async def test_stream_cut_before_finish_raises_model_stream_error(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "one two three four five"})
    upstream.faults(truncate_after_chunks=3)
    received: list[StreamEvent] = []

    with pytest.raises(ModelStreamError) as caught:
        await drain(provider.stream(REQUEST), into=received)

    assert [e.text for e in received if isinstance(e, TextDelta)] == ["one", " two"]
    assert caught.value.provider == "openai"


async def test_error_chunk_mid_stream_raises_model_stream_error(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "one two three"})
    upstream.faults(stream_error_after_chunks=2)

    with pytest.raises(ModelStreamError, match="mid-stream"):
        await collect(provider, REQUEST)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),
        ("eos", "other"),
    ],
)
async def test_finish_reasons_are_normalised_and_the_raw_value_kept(
    provider: OpenAIProvider, upstream: UpstreamControl, raw: str, normalised: str
) -> None:
    upstream.script({"text": "t", "finish_reason": raw}, {"text": "t", "finish_reason": raw})

    for response in (await provider.complete(REQUEST), final(await collect(provider, REQUEST))):
        assert response.finish_reason == normalised
        assert response.provider_finish_reason == raw


async def test_rate_limit_429_is_retryable_with_retry_after_parsed(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=429, retry_after_s=7)

    with pytest.raises(ModelHTTPError) as caught:
        await provider.complete(REQUEST)

    error = caught.value
    assert (error.status_code, error.retryable, error.retry_after_s) == (429, True, 7.0)
    assert error.error_type == "requests"
    assert error.body["error"]["code"] == "rate_limit_exceeded"


async def test_insufficient_quota_429_is_not_retryable(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=429, error_code="insufficient_quota")

    with pytest.raises(ModelHTTPError) as caught:
        await provider.complete(REQUEST)

    assert caught.value.status_code == 429
    assert caught.value.retryable is False
    assert caught.value.error_type == "insufficient_quota"


@pytest.mark.parametrize("status", [408, 409, 500, 503])
async def test_timeouts_conflicts_and_server_errors_are_retryable(
    provider: OpenAIProvider, upstream: UpstreamControl, status: int
) -> None:
    upstream.faults(error_status=status)

    with pytest.raises(ModelHTTPError) as caught:
        await provider.complete(REQUEST)

    assert (caught.value.status_code, caught.value.retryable) == (status, True)
    assert caught.value.retry_after_s is None


async def test_bad_request_is_not_retryable_and_carries_the_message(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=400, error_message="messages[1]: bad role")

    with pytest.raises(ModelHTTPError, match=r"messages\[1\]: bad role") as caught:
        await provider.complete(REQUEST)

    assert caught.value.retryable is False
    assert caught.value.error_type == "invalid_request_error"


async def test_http_error_on_a_stream_raises_before_any_delta(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=500)

    with pytest.raises(ModelHTTPError) as caught:
        await collect(provider, REQUEST)

    assert (caught.value.status_code, caught.value.retryable) == (500, True)


async def test_non_json_error_body_is_reported_as_text(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=502, error_body={"detail": "bad gateway"})

    with pytest.raises(ModelHTTPError) as caught:
        await provider.complete(REQUEST)

    assert caught.value.retryable is True
    assert caught.value.body == {"detail": "bad gateway"}


async def test_unreachable_server_raises_a_retryable_model_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OpenAIProvider(f"http://127.0.0.1:{port}/v1", "k") as provider:
        with pytest.raises(ModelError) as caught:
            await provider.complete(REQUEST)

    assert not isinstance(caught.value, ModelHTTPError)
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_shared_client_is_left_open_for_its_owner(
    upstream_url: str, upstream: UpstreamControl
) -> None:
    async with httpx.AsyncClient() as client:
        async with OpenAIProvider(f"{upstream_url}/v1", "k", client=client) as provider:
            await provider.complete(REQUEST)
        assert not client.is_closed


async def test_upstream_streams_usage_null_on_every_chunk_and_choices_empty_on_the_last(
    upstream_url: str, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "hi", "usage": {"input_tokens": 9, "cache_read_tokens": 4}})
    body: dict[str, Any] = {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{upstream_url}/v1/chat/completions", json=body)

    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 9
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


async def test_upstream_fault_probability_is_reproducible_with_a_seed(
    provider: OpenAIProvider, upstream: UpstreamControl
) -> None:
    async def outcomes() -> list[bool]:
        upstream.faults(error_status=503, probability=0.5, seed=7)
        results = []
        for _ in range(12):
            try:
                await provider.complete(REQUEST)
                results.append(True)
            except ModelHTTPError:
                results.append(False)
        return results

    first = await outcomes()
    assert first == await outcomes()
    assert True in first
    assert False in first
