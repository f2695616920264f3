"""From a model string ("openai:gpt-4.1-mini", "local", ...) to a configured `ModelProvider`,
with keys and base URLs from arguments, settings or the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from steward.errors import ConfigError, UnknownModel
from steward.models.anthropic import AnthropicProvider
from steward.models.local import LOCAL_MODEL_NAME, LocalModel
from steward.models.local_llm import LOCAL_LLM_MODEL_NAME, LocalLLM
from steward.models.openai import OpenAIProvider
from steward.models.types import ModelProvider

if TYPE_CHECKING:
    import httpx

__all__ = ["ACCEPTED_FORMS", "ModelSpec", "ProviderKind", "build_provider", "parse_model_string"]

ProviderKind = Literal["local", "local-llm", "openai", "anthropic", "openai-compatible"]

ACCEPTED_FORMS = (
    "local (or local:dev): the built-in development model, no key needed",
    "local-llm (or local-llm:smollm2-135m): a real small model on this machine, no key needed",
    "openai:<model>, e.g. openai:gpt-4.1-mini",
    "anthropic:<model>, e.g. anthropic:claude-sonnet-4-5",
    "openai-compatible:<base url>#<model>, e.g. openai-compatible:http://localhost:8000/v1#qwen3",
)
OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class ModelSpec:
    provider_kind: ProviderKind
    model: str
    base_url: str | None = None

    def __str__(self) -> str:
        if self.provider_kind == "openai-compatible":
            return f"openai-compatible:{self.base_url}#{self.model}"
        return f"{self.provider_kind}:{self.model}"


def _bad_string(text: str, why: str) -> UnknownModel:
    forms = "\n  ".join(ACCEPTED_FORMS)
    return UnknownModel(f"invalid model string {text!r}: {why}. Accepted forms:\n  {forms}")


def parse_model_string(text: str) -> ModelSpec:
    """Parse `local`, `local:dev`, `openai:<model>`, `anthropic:<model>` or
    `openai-compatible:<base url>#<model>`; anything else raises `ConfigError`."""
    value = text.strip()
    kind, sep, rest = value.partition(":")
    kind = kind.lower()
    if kind == "local":
        if sep and rest != LOCAL_MODEL_NAME:
            raise _bad_string(text, f"the local model is called {LOCAL_MODEL_NAME!r}")
        return ModelSpec("local", LOCAL_MODEL_NAME)
    if kind == "local-llm":
        if sep and rest != LOCAL_LLM_MODEL_NAME:
            raise _bad_string(text, f"the local-llm model is called {LOCAL_LLM_MODEL_NAME!r}")
        return ModelSpec("local-llm", LOCAL_LLM_MODEL_NAME)
    if kind in ("openai", "anthropic"):
        if not rest.strip():
            raise _bad_string(text, "the model name after ':' is missing")
        provider: ProviderKind = "openai" if kind == "openai" else "anthropic"
        return ModelSpec(provider, rest.strip())
    if kind == "openai-compatible":
        base_url, hash_sign, model = rest.rpartition("#")
        parts = urlsplit(base_url)
        if not hash_sign or not model.strip():
            raise _bad_string(text, "write the model after '#' following the base URL")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _bad_string(text, f"{base_url!r} is not an http(s) base URL")
        return ModelSpec("openai-compatible", model.strip(), base_url.rstrip("/"))
    raise _bad_string(text, "unknown provider" if value else "it is empty")


def _setting(settings: object | None, attribute: str) -> str | None:
    """Read an optional attribute; pydantic `SecretStr` values are unwrapped."""
    value = getattr(settings, attribute, None) if settings is not None else None
    reveal = getattr(value, "get_secret_value", None)
    if callable(reveal):
        value = reveal()
    return str(value) if value else None


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v), None)


def _missing_key(spec: ModelSpec, variable: str) -> ConfigError:
    return ConfigError(
        f"no API key for model '{spec}'. Set {variable} (or STEWARD_{variable}), for example "
        f"`export {variable}=...`, or pass api_key=...; to develop without a key, use the "
        "built-in local model: `export STEWARD_MODEL=local`."
    )


def build_provider(
    spec: ModelSpec | str,
    settings: object | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    env: Mapping[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> ModelProvider:
    """A provider for `spec`. Credentials come from, in order: the arguments; the settings
    object's `openai_api_key` / `anthropic_api_key` / `openai_compatible_api_key` and
    `openai_base_url` / `anthropic_base_url` attributes; then the environment
    (`STEWARD_OPENAI_API_KEY`, `OPENAI_API_KEY`, `STEWARD_ANTHROPIC_API_KEY`,
    `ANTHROPIC_API_KEY`, `STEWARD_OPENAI_BASE_URL`, `STEWARD_ANTHROPIC_BASE_URL`,
    `STEWARD_OPENAI_COMPATIBLE_API_KEY`). A missing key raises `ConfigError` saying how to
    set it or how to use the local model instead.
    """
    if isinstance(spec, str):
        spec = parse_model_string(spec)
    environ = os.environ if env is None else env
    if spec.provider_kind == "local":
        return LocalModel()
    if spec.provider_kind == "local-llm":
        return LocalLLM()
    if spec.provider_kind == "openai":
        key = _first(
            api_key,
            _setting(settings, "openai_api_key"),
            environ.get("STEWARD_OPENAI_API_KEY"),
            environ.get("OPENAI_API_KEY"),
        )
        if key is None:
            raise _missing_key(spec, "OPENAI_API_KEY")
        url = _first(
            base_url,
            _setting(settings, "openai_base_url"),
            environ.get("STEWARD_OPENAI_BASE_URL"),
        )
        return OpenAIProvider(
            url or OPENAI_BASE_URL, key, max_tokens_param="max_completion_tokens", client=client
        )
    if spec.provider_kind == "anthropic":
        key = _first(
            api_key,
            _setting(settings, "anthropic_api_key"),
            environ.get("STEWARD_ANTHROPIC_API_KEY"),
            environ.get("ANTHROPIC_API_KEY"),
        )
        if key is None:
            raise _missing_key(spec, "ANTHROPIC_API_KEY")
        url = _first(
            base_url,
            _setting(settings, "anthropic_base_url"),
            environ.get("STEWARD_ANTHROPIC_BASE_URL"),
        )
        return AnthropicProvider(url or ANTHROPIC_BASE_URL, key, client=client)
    # Never fall back to OPENAI_API_KEY here: it would hand an OpenAI secret to a third-party
    # server. Self-hosted servers mostly need no key at all.
    key = _first(
        api_key,
        _setting(settings, "openai_compatible_api_key"),
        environ.get("STEWARD_OPENAI_COMPATIBLE_API_KEY"),
    )
    return OpenAIProvider(
        base_url or spec.base_url or "", key, name="openai-compatible", client=client
    )
