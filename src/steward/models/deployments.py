"""Provider deployments: one endpoint + key each, with its provider object (agent calls), its
own HTTP session (proxy calls) and a circuit breaker per model it serves; and the routes that
name them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from steward.errors import ConfigError, UnknownModel
from steward.models.anthropic import AnthropicProvider
from steward.models.local import LocalModel
from steward.models.local_llm import LOCAL_LLM_PROVIDER_NAME, LocalLLM
from steward.models.openai import OpenAIProvider
from steward.models.resilience import CircuitBreaker
from steward.models.resolve import (
    ANTHROPIC_BASE_URL,
    OPENAI_BASE_URL,
    ModelSpec,
    parse_model_string,
)
from steward.models.settings import DeploymentSettings, GatewaySettings
from steward.models.types import ModelProvider

if TYPE_CHECKING:
    import aiohttp

Dialect = Literal["openai", "anthropic", "local"]


@dataclass(frozen=True)
class Target:
    """One entry of a route: which deployment, asked for which model."""

    deployment: Deployment
    model: str

    @property
    def breaker(self) -> CircuitBreaker:
        return self.deployment.breaker(self.model)


@dataclass(eq=False)
class Deployment:
    name: str
    provider_name: str  # gen_ai.provider.name and the price table's provider key
    dialect: Dialect
    base_url: str
    api_key: str | None
    provider: ModelProvider
    make_breaker: Callable[[str], CircuitBreaker] = field(repr=False)
    connect_timeout_s: float
    read_timeout_s: float
    max_connections: int
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict, repr=False)

    def breaker(self, model: str) -> CircuitBreaker:
        """The breaker of this endpoint for `model`: a model that fails or is withdrawn must not
        take the deployment's other models down with it."""
        breaker = self._breakers.get(model)
        if breaker is None:
            breaker = self._breakers[model] = self.make_breaker(model)
        return breaker

    def session(self) -> aiohttp.ClientSession:
        """The proxy's connection pool to this deployment (aiohttp: httpx's pool collapses at
        50+ concurrent requests, REFERENCE.md); created on first use, inside the event loop.
        The package too is imported here: a process that proxies nothing never loads it."""
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.connect_timeout_s, sock_read=self.read_timeout_s
                ),
                auto_decompress=False,
            )
        return self._session

    async def aclose(self) -> None:
        await self.provider.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _env_first(env: Mapping[str, str], *names: str) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


class Deployments:
    """Every known deployment by name, built on first use, and route resolution."""

    def __init__(
        self,
        settings: GatewaySettings,
        default_model: str,
        *,
        on_breaker_change: Callable[[str, str, str], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.default_model = default_model
        self._env = os.environ if env is None else env
        self._on_change = on_breaker_change
        self._configured = {d.name: d for d in settings.deployments}
        self._built: dict[str, Deployment] = {}

    def targets(self, model: str | None) -> list[Target]:
        """The ordered fallbacks for `model` (or the default model); ConfigError if unknown."""
        name = model or self.default_model
        return [self._target(entry) for entry in self.settings.routes.get(name) or [name]]

    def _target(self, entry: str) -> Target:
        prefix, sep, model = entry.partition(":")
        if sep and prefix in self._configured:
            return Target(self.get(prefix), model)
        spec = parse_model_string(entry)
        return Target(self._for_spec(spec), spec.model)

    def get(self, name: str) -> Deployment:
        deployment = self._built.get(name)
        if deployment is None:
            deployment = self._build_configured(self._configured[name])
            self._built[name] = deployment
        return deployment

    def all(self) -> list[Deployment]:
        return list(self._built.values())

    def _for_spec(self, spec: ModelSpec) -> Deployment:
        name = (
            spec.provider_kind if spec.base_url is None else f"{spec.provider_kind}:{spec.base_url}"
        )
        deployment = self._built.get(name)
        if deployment is not None:
            return deployment
        env = self._env
        if spec.provider_kind == "local":
            deployment = self._make(name, "steward.local", "local", "", None)
        elif spec.provider_kind == "local-llm":
            deployment = self._make(name, LOCAL_LLM_PROVIDER_NAME, "local", "", None)
        elif spec.provider_kind == "openai":
            key = _env_first(env, "STEWARD_OPENAI_API_KEY", "OPENAI_API_KEY")
            if key is None:
                raise _missing_key(spec, "OPENAI_API_KEY")
            url = _env_first(env, "STEWARD_OPENAI_BASE_URL") or OPENAI_BASE_URL
            deployment = self._make(name, "openai", "openai", url, key)
        elif spec.provider_kind == "anthropic":
            key = _env_first(env, "STEWARD_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
            if key is None:
                raise _missing_key(spec, "ANTHROPIC_API_KEY")
            url = _env_first(env, "STEWARD_ANTHROPIC_BASE_URL") or ANTHROPIC_BASE_URL
            deployment = self._make(name, "anthropic", "anthropic", url, key)
        else:
            # Never OPENAI_API_KEY here: it would hand an OpenAI secret to a third party.
            key = _env_first(env, "STEWARD_OPENAI_COMPATIBLE_API_KEY")
            deployment = self._make(name, "openai-compatible", "openai", spec.base_url or "", key)
        self._built[name] = deployment
        return deployment

    def _build_configured(self, config: DeploymentSettings) -> Deployment:
        key = config.api_key.get_secret_value() if config.api_key else None
        if key is None and config.api_key_env:
            key = self._env.get(config.api_key_env)
            if not key:
                raise ConfigError(
                    f"deployment {config.name!r} reads its key from ${config.api_key_env}, "
                    "which is not set"
                )
        return self._make(config.name, config.provider, config.provider, config.base_url, key)

    def _make(
        self, name: str, provider_name: str, dialect: Dialect, base_url: str, key: str | None
    ) -> Deployment:
        s = self.settings
        provider: ModelProvider
        if dialect == "local":
            provider = LocalLLM() if provider_name == LOCAL_LLM_PROVIDER_NAME else LocalModel()
        elif dialect == "openai":
            provider = OpenAIProvider(
                base_url,
                key,
                name=provider_name,
                timeout_s=s.read_timeout_s,
                connect_timeout_s=s.connect_timeout_s,
                max_tokens_param="max_completion_tokens"
                if provider_name == "openai"
                else "max_tokens",
            )
        else:
            provider = AnthropicProvider(
                base_url, key, timeout_s=s.read_timeout_s, connect_timeout_s=s.connect_timeout_s
            )
        on_change = self._on_change

        def make_breaker(model: str) -> CircuitBreaker:
            return CircuitBreaker(
                f"{name}:{model}",
                failure_threshold=s.breaker_failures,
                cooloff_s=s.breaker_cooloff_s,
                on_change=None
                if on_change is None
                else lambda _name, state: on_change(name, model, state),
            )

        return Deployment(
            name=name,
            provider_name=provider_name,
            dialect=dialect,
            base_url=base_url.rstrip("/"),
            api_key=key,
            provider=provider,
            make_breaker=make_breaker,
            connect_timeout_s=s.connect_timeout_s,
            read_timeout_s=s.read_timeout_s,
            max_connections=s.max_connections_per_deployment,
        )

    async def aclose(self) -> None:
        for deployment in self._built.values():
            await deployment.aclose()
        self._built.clear()


def _missing_key(spec: ModelSpec, variable: str) -> UnknownModel:
    # No deployment can serve the model: to a caller that named it, an unknown model (404 on
    # the proxy); a deployment configured with a key variable that is unset stays a ConfigError.
    return UnknownModel(
        f"no API key for model '{spec}'. Set {variable} (or STEWARD_{variable}), for example "
        f"`export {variable}=...`, or configure a deployment under [steward.gateway]; to develop "
        "without a key, use the built-in local model: `export STEWARD_MODEL=local`."
    )
