"""The proxy with the official SDKs, unmodified but for base_url and key, in front of the
wire-compatible upstream: JSON, streaming and tool calls in both dialects, provider-shaped
errors, spend records, caps, metrics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import StewardProcess, make_process

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    process = make_process(
        tmp_path_factory.mktemp("proxy"),
        OPENAI_API_KEY="sk-upstream-openai",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
        ANTHROPIC_API_KEY="sk-upstream-anthropic",
        STEWARD_ANTHROPIC_BASE_URL=upstream,
        STEWARD_GATEWAY=json.dumps(
            {
                "routes": {"gpt-4.1-mini": ["openai:gpt-4.1-mini"]},
                "caps": {"user_daily_usd": 1.0},
                "backoff_base_s": 0.01,
            }
        ),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(proxy: StewardProcess) -> str:
    return proxy.create_key("proxy")


@pytest.fixture
def control(upstream: str) -> UpstreamControl:
    control = UpstreamControl(upstream)
    control.reset()
    return control


_sdk_clients: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    """Each test's SDK clients close their connections when it ends (no unclosed sockets)."""
    yield
    while _sdk_clients:
        _sdk_clients.pop().close()


def _openai(proxy: StewardProcess, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
    _sdk_clients.append(client)
    return client


def _anthropic(proxy: StewardProcess, key: str) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0)
    _sdk_clients.append(client)
    return client


def test_openai_sdk_json_completion_is_priced_and_the_provider_key_stays_hidden(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    control.script({"text": "Hi there", "usage": {"input_tokens": 1000, "output_tokens": 100}})
    user = f"u-{uuid.uuid4().hex[:6]}"

    completion = _openai(proxy, key).chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "Hello"}], user=user
    )

    assert completion.choices[0].message.content == "Hi there"
    assert completion.usage is not None and completion.usage.prompt_tokens == 1000
    (sent,) = control.requests()
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-openai"
    assert key not in json.dumps(sent)
    totals = httpx.get(
        f"{proxy.url}/spend", params={"group_by": "user"}, headers={"x-api-key": key}
    ).json()["totals"]
    (mine,) = [t for t in totals if t["group"] == user]
    assert mine["calls"] == 1
    assert mine["cost_usd"] == pytest.approx((1000 * 0.4 + 100 * 1.6) / 1e6)


def test_openai_sdk_streams_text_and_reads_the_usage_chunk(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    control.script({"text": "one two three", "usage": {"input_tokens": 50, "output_tokens": 3}})

    chunks = list(
        _openai(proxy, key).chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_openai_stream_without_include_usage_hides_the_chunk_steward_asked_for(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    control.script({"text": "quiet", "usage": {"input_tokens": 5, "output_tokens": 1}})

    chunks = list(
        _openai(proxy, key).chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )

    assert all(c.usage is None for c in chunks)
    (sent,) = control.requests()
    assert sent["body"]["stream_options"] == {"include_usage": True}


def test_openai_sdk_tool_calls_pass_through_json_and_stream(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    control.script({"tool_calls": [call]}, {"tool_calls": [call]})
    client = _openai(proxy, key)
    messages = [{"role": "user", "content": "weather in Paris?"}]

    completion = client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[arg-type,list-item]
    )
    stream = client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,  # type: ignore[arg-type,list-item]
    )
    fragments = [
        tc.function.arguments or ""
        for chunk in stream
        if chunk.choices
        for tc in chunk.choices[0].delta.tool_calls or ()
        if tc.function is not None
    ]

    tool_call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert json.loads("".join(fragments)) == {"city": "Paris"}
    assert control.requests()[0]["body"]["tools"] == [WEATHER_TOOL]


def test_anthropic_sdk_messages_json_stream_and_tool_use(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    control.script(
        {
            "text": "Bonjour",
            "usage": {"input_tokens": 900, "output_tokens": 2, "cache_read_tokens": 800},
        },
        {"text": "streamed words here"},
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    )
    client = _anthropic(proxy, key)
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]

    message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        system=system,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "Hi"}],
    )
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    tool_message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        tools=[{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    )

    assert message.content[0].text == "Bonjour"  # type: ignore[union-attr]
    assert message.usage.cache_read_input_tokens == 800
    assert streamed == "streamed words here" and final.stop_reason == "end_turn"
    assert tool_message.stop_reason == "tool_use"
    assert tool_message.content[0].input == {"city": "Oslo"}  # type: ignore[union-attr]
    first = control.requests()[0]
    assert first["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}  # passed through
    assert first["headers"]["x-api-key"] == "sk-upstream-anthropic"
    assert "anthropic-version" in first["headers"]


def test_auth_errors_come_in_each_providers_shape(proxy: StewardProcess) -> None:
    with pytest.raises(openai.AuthenticationError) as openai_error:
        _openai(proxy, "stw_000000000000_" + "x" * 43).chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.AuthenticationError) as anthropic_error:
        _anthropic(proxy, "wrong").messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )

    assert openai_error.value.status_code == 401
    assert openai_error.value.code == "invalid_api_key"
    assert anthropic_error.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_invalid_bodies_get_provider_shaped_400s(proxy: StewardProcess, key: str) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/messages", headers={"x-api-key": key}, json={"model": "claude-haiku-4-5"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize(
    ("field", "value"),
    [("n", 0), ("n", 129), ("n", "8"), ("max_tokens", -1), ("max_completion_tokens", 1.5)],
)
def test_output_limits_the_reservation_cannot_price_are_refused_before_any_spend(
    proxy: StewardProcess, key: str, control: UpstreamControl, field: str, value: object
) -> None:
    with pytest.raises(openai.BadRequestError, match=field):
        _openai(proxy, key).chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_body={field: value},
        )
    assert control.requests() == []


def test_an_anthropic_request_is_not_priced_by_openais_n(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-haiku-4-5",
            "max_tokens": 10,
            "n": "several",  # not an Anthropic field: the provider ignores it, and so do we
            "messages": [{"role": "user", "content": "hi"}],
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Echo: hi"


def test_non_retryable_upstream_errors_reach_the_client_once_with_their_status(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    control.faults(error_status=429, error_code="insufficient_quota", retry_after_s=7, times=1)

    with pytest.raises(openai.RateLimitError) as error:
        _openai(proxy, key).chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}]
        )

    assert error.value.code == "insufficient_quota"
    assert error.value.response.headers["retry-after"] == "7"
    assert len(control.requests()) == 1


def test_retryable_upstream_errors_are_retried_and_hidden(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    control.faults(error_status=529, times=2)

    message = _anthropic(proxy, key).messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "again"}]
    )

    assert message.content[0].text == "Echo: again"  # type: ignore[union-attr]
    assert len(control.requests()) == 3


def test_a_stream_cut_after_bytes_went_out_is_not_retried_and_is_priced_as_estimated(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    control.faults(truncate_after_chunks=3, times=1)
    user = f"cut-{uuid.uuid4().hex[:6]}"
    client = _openai(proxy, key)

    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "a long answer please"}],
            stream=True,
            user=user,
        ):
            pass

    assert len(control.requests()) == 1
    totals = httpx.get(
        f"{proxy.url}/spend", params={"group_by": "user"}, headers={"x-api-key": key}
    ).json()["totals"]
    (mine,) = [t for t in totals if t["group"] == user]
    assert mine["calls"] == 1 and mine["cost_usd"] > 0


def test_spend_cap_answers_429_with_the_cap_and_its_reset(
    proxy: StewardProcess, key: str, control: UpstreamControl
) -> None:
    with pytest.raises(openai.RateLimitError) as error:
        _openai(proxy, key).chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "x"}],
            max_tokens=10_000_000,  # reserving this much passes the $1 daily user cap
            user="big-spender",
        )

    body = error.value.body
    assert isinstance(body, dict) and body["code"] == "spend_cap_exceeded"
    assert "and 10,000,000 output tokens" in body["message"]  # what it would have reserved
    assert body["steward_spend_cap"]["reserved"]["output_tokens_per_choice"] == 10_000_000
    assert body["steward_spend_cap"]["cap"] == "user_daily"
    assert body["steward_spend_cap"]["resets_at"].endswith("T00:00:00Z")
    assert error.value.response.headers["x-should-retry"] == "false"
    assert control.requests() == []


def test_models_metrics_and_spend_cli(proxy: StewardProcess, key: str) -> None:
    models = _openai(proxy, key).models.list()
    metrics = httpx.get(f"{proxy.url}/metrics", headers={"x-api-key": key})
    table = proxy.cli("spend", "--group-by", "model")

    assert "gpt-4.1-mini" in [m.id for m in models.data]
    assert metrics.status_code == 200
    assert "gen_ai_client_token_usage_bucket" in metrics.text
    assert "gen_ai_client_operation_duration_seconds_bucket" in metrics.text
    assert "gen_ai_client_operation_time_to_first_chunk_seconds_bucket" in metrics.text
    assert "steward_gateway_spend_usd_total" in metrics.text
    assert "gpt-4.1-mini" in table


def test_models_list_answers_each_sdk_in_its_own_shape(proxy: StewardProcess, key: str) -> None:
    openai_models = _openai(proxy, key).models.list()
    anthropic_client = _anthropic(proxy, key)
    first_page = anthropic_client.models.list(limit=1)
    every_model = list(anthropic_client.models.list(limit=1))  # the SDK follows the pages

    assert [m.id for m in openai_models.data] == ["gpt-4.1-mini", "local"]
    assert {m.object for m in openai_models.data} == {"model"}
    assert [m.id for m in every_model] == ["gpt-4.1-mini", "local"]
    assert {(m.type, m.display_name == m.id) for m in every_model} == {("model", True)}
    assert (first_page.has_more, first_page.first_id, first_page.last_id) == (
        True,
        "gpt-4.1-mini",
        "gpt-4.1-mini",
    )
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.models.list(limit=0)


def test_spend_report_is_tenant_scoped(proxy: StewardProcess, tmp_path: Path) -> None:
    other = proxy.create_key("other", tenant="acme")
    totals = httpx.get(
        f"{proxy.url}/spend", params={"group_by": "tenant"}, headers={"x-api-key": other}
    ).json()["totals"]
    assert totals == []
