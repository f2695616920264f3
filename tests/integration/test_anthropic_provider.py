"""AnthropicProvider against the wire-compatible upstream over real HTTP (uvicorn on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from steward.errors import ModelHTTPError, ModelStreamError
from steward.models.anthropic import AnthropicProvider
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
    model="claude-sonnet-4-5",
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
async def provider(upstream_url: str) -> AsyncIterator[AnthropicProvider]:
    async with AnthropicProvider(upstream_url, "sk-ant-test") as provider:
        yield provider


async def collect(provider: AnthropicProvider, request: ModelRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def drain(events: AsyncIterator[StreamEvent], into: list[StreamEvent]) -> None:
    async for event in events:
        into.append(event)


def final(events: list[StreamEvent]) -> ModelResponse:
    last = events[-1]
    assert isinstance(last, StreamDone)
    return last.response


async def test_complete_returns_text_and_normalised_stop_reason(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "Sunny.", "model": "claude-sonnet-4-5-20250929"})

    response = await provider.complete(REQUEST)

    assert response.provider == "anthropic"
    assert response.model == "claude-sonnet-4-5-20250929"
    assert response.id.startswith("msg_")
    assert response.content == "Sunny."
    assert (response.finish_reason, response.provider_finish_reason) == ("stop", "end_turn")


async def test_input_tokens_exclude_cache_so_total_input_adds_cache_reads_and_writes(
    provider: AnthropicProvider, upstream: UpstreamControl, upstream_url: str
) -> None:
    usage = {
        "input_tokens": 1300,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 200,
        "output_tokens": 50,
    }
    upstream.script(*({"text": text, "usage": usage} for text in "abc"))

    completed = await provider.complete(REQUEST)
    streamed = final(await collect(provider, REQUEST))
    async with httpx.AsyncClient() as client:
        raw = await client.post(
            f"{upstream_url}/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            headers={"anthropic-version": "2023-06-01"},
        )

    # On the wire Anthropic's input_tokens is only the uncached part.
    assert raw.json()["usage"]["input_tokens"] == 100
    for result in (completed.usage, streamed.usage):
        assert result.input_tokens == 1300
        assert result.cache_read_tokens == 1000
        assert result.cache_write_tokens == 200
        assert result.output_tokens == 50
        assert result.estimated is False


async def test_streamed_output_usage_is_cumulative_not_added_to_message_start(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    # message_start says output_tokens=1; message_delta says the running total 42.
    upstream.script({"text": "hello there", "usage": {"input_tokens": 10, "output_tokens": 42}})

    response = final(await collect(provider, REQUEST))

    assert response.usage.output_tokens == 42
    assert response.usage.input_tokens == 10


async def test_request_sends_api_key_version_and_top_level_system(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    await provider.complete(REQUEST)

    [sent] = upstream.requests()
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-ant-test"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent["headers"]
    body = sent["body"]
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 1024
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER.parameters,
        }
    ]


async def test_consecutive_tool_results_are_merged_into_one_user_turn(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    calls = (
        ToolCall("toolu_1", "get_weather", {"city": "Paris"}),
        ToolCall("toolu_2", "get_weather", {"city": "Oslo"}),
    )
    request = ModelRequest(
        model="claude-sonnet-4-5",
        messages=(
            Message("user", "Paris and Oslo?"),
            Message("assistant", "Checking.", tool_calls=calls),
            Message("tool", "21", tool_call_id="toolu_1", name="get_weather"),
            Message("tool", "4", tool_call_id="toolu_2", name="get_weather"),
        ),
        tools=(WEATHER,),
        tool_choice="required",
        max_tokens=300,
        stop=("END",),
    )

    await provider.complete(request)

    body = upstream.requests()[0]["body"]
    assert "system" not in body
    assert body["max_tokens"] == 300
    assert body["tool_choice"] == {"type": "any"}
    assert body["stop_sequences"] == ["END"]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Paris and Oslo?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "4"},
            ],
        },
    ]


async def test_configured_version_is_sent_and_a_trailing_v1_in_base_url_is_tolerated(
    upstream_url: str, upstream: UpstreamControl
) -> None:
    async with AnthropicProvider(
        f"{upstream_url}/v1/", "k", anthropic_version="2024-01-01", default_max_tokens=64
    ) as provider:
        await provider.complete(REQUEST)

    [sent] = upstream.requests()
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["anthropic-version"] == "2024-01-01"
    assert sent["body"]["max_tokens"] == 64


async def test_stream_yields_text_deltas_and_measures_time_to_first_text_delta(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "It is sunny in Paris."})
    upstream.faults(first_chunk_delay_s=0.3)

    events = await collect(provider, REQUEST)

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    assert "".join(deltas) == "It is sunny in Paris."
    response = final(events)
    assert response.content == "It is sunny in Paris."
    assert response.time_to_first_chunk_s is not None
    assert response.time_to_first_chunk_s >= 0.3  # message_start and ping do not count
    assert upstream.requests()[0]["body"]["stream"] is True


async def test_tool_use_input_is_reassembled_from_partial_json_in_both_modes(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    script = {
        "text": "Let me check.",
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "toolu_fixed"},
        ],
    }
    upstream.script(script, script)

    completed = await provider.complete(REQUEST)
    events = await collect(provider, REQUEST)

    starts = [e for e in events if isinstance(e, ToolCallDelta) and e.id is not None]
    assert [(e.index, e.name) for e in starts] == [(0, "get_weather"), (1, "get_weather")]
    fragments = [e for e in events if isinstance(e, ToolCallDelta) and e.arguments_fragment]
    assert len(fragments) > 2
    for response in (completed, final(events)):
        assert response.content == "Let me check."
        assert (response.finish_reason, response.provider_finish_reason) == (
            "tool_calls",
            "tool_use",
        )
        assert response.tool_calls[0].arguments == {"city": "Paris", "unit": "celsius"}
        assert response.tool_calls[0].id.startswith("toolu_")
        assert response.tool_calls[1] == ToolCall("toolu_fixed", "get_weather", {"city": "Oslo"})


async def test_malformed_streamed_tool_input_is_kept_raw(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Pa'}]})

    response = final(await collect(provider, REQUEST))

    assert response.tool_calls[0].arguments == {"_raw": '{"city": "Pa'}


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
        ("model_context_window_exceeded", "other"),
    ],
)
async def test_stop_reasons_are_normalised_and_the_raw_value_kept(
    provider: AnthropicProvider, upstream: UpstreamControl, raw: str, normalised: str
) -> None:
    upstream.script({"text": "t", "finish_reason": raw}, {"text": "t", "finish_reason": raw})

    for response in (await provider.complete(REQUEST), final(await collect(provider, REQUEST))):
        assert response.finish_reason == normalised
        assert response.provider_finish_reason == raw


async def test_stream_without_usage_reports_an_estimate(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "y" * 20, "include_usage": False})

    response = final(await collect(provider, REQUEST))

    assert response.usage.estimated is True
    assert response.usage.output_tokens == 5
    assert response.usage.input_tokens > 0


async def test_error_event_after_http_200_raises_model_stream_error(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "one two three four"})
    # message_start, block start, ping, "one", then `event: error`.
    upstream.faults(stream_error_after_chunks=4)
    received: list[StreamEvent] = []

    with pytest.raises(ModelStreamError, match="overloaded_error") as caught:
        await drain(provider.stream(REQUEST), into=received)

    assert received == [TextDelta("one")]
    assert caught.value.retryable is True


async def test_invalid_request_error_event_mid_stream_is_not_retryable(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(stream_error_after_chunks=1, stream_error_type="invalid_request_error")

    with pytest.raises(ModelStreamError) as caught:
        await collect(provider, REQUEST)

    assert caught.value.retryable is False


async def test_stream_cut_before_message_stop_raises_model_stream_error(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.script({"text": "one two three"})
    upstream.faults(truncate_after_chunks=5)

    with pytest.raises(ModelStreamError, match="before message_stop"):
        await collect(provider, REQUEST)


async def test_rate_limit_429_is_retryable_with_retry_after_parsed(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=429, retry_after_s=12)

    with pytest.raises(ModelHTTPError) as caught:
        await provider.complete(REQUEST)

    error = caught.value
    assert (error.status_code, error.retryable, error.retry_after_s) == (429, True, 12.0)
    assert error.error_type == "rate_limit_error"


async def test_enforced_spend_limit_429_is_not_retryable(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=429, error_code="enforced_spend_limit_reached")

    with pytest.raises(ModelHTTPError) as caught:
        await provider.complete(REQUEST)

    assert caught.value.retryable is False
    assert caught.value.body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}


@pytest.mark.parametrize(("status", "error_type"), [(500, "api_error"), (529, "overloaded_error")])
async def test_server_errors_and_overload_are_retryable(
    provider: AnthropicProvider, upstream: UpstreamControl, status: int, error_type: str
) -> None:
    upstream.faults(error_status=status)

    for call in (provider.complete(REQUEST), collect(provider, REQUEST)):
        with pytest.raises(ModelHTTPError) as caught:
            await call
        assert (caught.value.status_code, caught.value.retryable) == (status, True)
        assert caught.value.error_type == error_type


async def test_invalid_request_is_not_retryable(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=400, error_message="max_tokens: must be positive")

    with pytest.raises(ModelHTTPError, match="max_tokens: must be positive") as caught:
        await provider.complete(REQUEST)

    assert caught.value.retryable is False
    assert caught.value.error_type == "invalid_request_error"


async def test_upstream_refuses_requests_without_anthropic_version(
    upstream_url: str, upstream: UpstreamControl
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{upstream_url}/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": []},
        )

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_upstream_fault_can_be_limited_to_the_first_requests(
    provider: AnthropicProvider, upstream: UpstreamControl
) -> None:
    upstream.faults(error_status=529, times=1)

    with pytest.raises(ModelHTTPError):
        await provider.complete(REQUEST)
    response = await provider.complete(REQUEST)

    assert response.content == "Echo: Weather in Paris?"
