"""Model strings and provider construction: accepted forms, key lookup, guided errors."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from steward.errors import ConfigError
from steward.models.anthropic import AnthropicProvider
from steward.models.local import LocalModel
from steward.models.openai import OpenAIProvider
from steward.models.resolve import ModelSpec, build_provider, parse_model_string
from steward.models.types import ModelProvider


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("local", ModelSpec("local", "dev")),
        ("local:dev", ModelSpec("local", "dev")),
        (" LOCAL ", ModelSpec("local", "dev")),
        ("openai:gpt-4.1-mini", ModelSpec("openai", "gpt-4.1-mini")),
        ("anthropic:claude-sonnet-4-5", ModelSpec("anthropic", "claude-sonnet-4-5")),
        (
            "openai-compatible:http://host:8000/v1#qwen3:8b",
            ModelSpec("openai-compatible", "qwen3:8b", "http://host:8000/v1"),
        ),
        (
            "openai-compatible:https://llm.internal/v1/#meta/llama",
            ModelSpec("openai-compatible", "meta/llama", "https://llm.internal/v1"),
        ),
    ],
)
def test_accepted_model_strings_parse_to_specs(text: str, spec: ModelSpec) -> None:
    assert parse_model_string(text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gpt-4.1",
        "openai:",
        "anthropic: ",
        "local:llama",
        "mistral:large",
        "openai-compatible:http://host:8000/v1",
        "openai-compatible:http://host:8000/v1#",
        "openai-compatible:ftp://host/v1#m",
        "openai-compatible:host:8000#m",
    ],
)
def test_bad_model_strings_raise_config_error_listing_the_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_model_string(text)

    message = str(caught.value)
    assert "openai:<model>" in message
    assert "anthropic:<model>" in message
    assert "openai-compatible:<base url>#<model>" in message
    assert "local" in message


def test_spec_prints_back_as_its_model_string() -> None:
    for text in ("local:dev", "openai:gpt-4.1", "openai-compatible:http://h:1/v1#m"):
        assert str(parse_model_string(text)) == text


async def test_local_needs_no_key() -> None:
    provider = build_provider("local", env={})

    assert isinstance(provider, LocalModel)
    assert isinstance(provider, ModelProvider)


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("openai:gpt-4.1-mini", "OPENAI_API_KEY"),
        ("anthropic:claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_key_says_how_to_set_it_or_use_the_local_model(model: str, variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_provider(model, env={})

    message = str(caught.value)
    assert f"export {variable}=" in message
    assert f"STEWARD_{variable}" in message
    assert "STEWARD_MODEL=local" in message
    assert model in message


async def test_openai_key_comes_from_the_environment_with_the_steward_name_first() -> None:
    env = {"OPENAI_API_KEY": "sk-plain", "STEWARD_OPENAI_API_KEY": "sk-steward"}

    provider = build_provider("openai:gpt-4.1-mini", env=env)

    assert isinstance(provider, OpenAIProvider)
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.max_tokens_param == "max_completion_tokens"
    assert provider._headers["authorization"] == "Bearer sk-steward"
    await provider.aclose()


async def test_base_url_overrides_come_from_the_environment() -> None:
    env = {
        "ANTHROPIC_API_KEY": "sk-ant",
        "STEWARD_ANTHROPIC_BASE_URL": "http://127.0.0.1:9/",
        "OPENAI_API_KEY": "sk",
        "STEWARD_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    }

    anthropic = build_provider("anthropic:claude-sonnet-4-5", env=env)
    openai = build_provider("openai:gpt-4.1", env=env)

    assert isinstance(anthropic, AnthropicProvider)
    assert anthropic.url == "http://127.0.0.1:9/v1/messages"
    assert anthropic._headers["x-api-key"] == "sk-ant"
    assert isinstance(openai, OpenAIProvider)
    assert openai.url == "http://127.0.0.1:9/v1/chat/completions"
    await anthropic.aclose()
    await openai.aclose()


async def test_arguments_win_over_settings_and_settings_over_the_environment() -> None:
    class Settings:
        anthropic_api_key = SecretStr("sk-from-settings")
        anthropic_base_url = "http://settings.invalid"

    env = {"ANTHROPIC_API_KEY": "sk-from-env"}

    from_settings = build_provider("anthropic:claude-haiku-4-5", Settings(), env=env)
    from_arguments = build_provider(
        "anthropic:claude-haiku-4-5", Settings(), api_key="sk-arg", base_url="http://arg", env=env
    )

    assert isinstance(from_settings, AnthropicProvider)
    assert from_settings._headers["x-api-key"] == "sk-from-settings"
    assert from_settings.base_url == "http://settings.invalid"
    assert isinstance(from_arguments, AnthropicProvider)
    assert from_arguments._headers["x-api-key"] == "sk-arg"
    assert from_arguments.base_url == "http://arg"
    await from_settings.aclose()
    await from_arguments.aclose()


async def test_openai_compatible_needs_no_key_and_never_borrows_the_openai_key() -> None:
    provider = build_provider(
        "openai-compatible:http://127.0.0.1:8000/v1#qwen3", env={"OPENAI_API_KEY": "sk-secret"}
    )

    assert isinstance(provider, OpenAIProvider)
    assert provider.name == "openai-compatible"
    assert provider.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert "authorization" not in provider._headers
    await provider.aclose()


async def test_openai_compatible_key_can_be_given_explicitly() -> None:
    env = {"STEWARD_OPENAI_COMPATIBLE_API_KEY": "local-key"}

    provider = build_provider("openai-compatible:http://127.0.0.1:8000/v1#m", env=env)

    assert isinstance(provider, OpenAIProvider)
    assert provider._headers["authorization"] == "Bearer local-key"
    await provider.aclose()
