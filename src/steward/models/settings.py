"""The gateway's settings (the `[steward.gateway]` table of `steward.toml`, or the JSON value of
`STEWARD_GATEWAY`): deployments, fallback routes, spend caps, retries, breakers, timeouts, cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from steward.models.budget.caps import SpendCaps

__all__ = ["DeploymentSettings", "GatewaySettings"]


class DeploymentSettings(BaseModel):
    """One provider endpoint with its own key, breaker and connection pool."""

    name: str = Field(description="How routes refer to it: `<name>:<model>`.")
    provider: Literal["openai", "anthropic"] = Field(
        description="Its API dialect, and the price table's provider key."
    )
    base_url: str = Field(
        description="OpenAI: with the version segment (`https://api.openai.com/v1`); "
        "Anthropic: without it (`https://api.anthropic.com`)."
    )
    api_key: SecretStr | None = Field(None, description="The provider key (never shown to agents).")
    api_key_env: str | None = Field(None, description="Or: the variable that holds the key.")


class GatewaySettings(BaseModel):
    deployments: list[DeploymentSettings] = Field(
        default_factory=list,
        description="Extra deployments; `openai` and `anthropic` exist by default, configured "
        "from STEWARD_OPENAI_API_KEY / STEWARD_OPENAI_BASE_URL and their Anthropic twins.",
    )
    routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Logical model -> ordered fallbacks, each `<deployment>:<model>` or a model "
        'string, e.g. {"gpt-4.1-mini": ["primary:gpt-4.1-mini", "backup:gpt-4.1-mini"]}.',
    )
    caps: SpendCaps = Field(default_factory=SpendCaps, description="Spend caps in USD.")
    spend_counters: Literal["auto", "memory", "database", "redis"] = Field(
        "auto",
        description="Where cap counters live; auto: Redis when STEWARD_REDIS_URL is set, "
        "else the database.",
    )
    price_table: Path | None = Field(
        None, description="A JSON price table whose entries override the shipped ones."
    )
    max_retries: int = Field(3, ge=0, le=3, description="Retries per deployment (at most 3).")
    backoff_base_s: float = Field(0.5, ge=0, description="First backoff ceiling (full jitter).")
    backoff_max_s: float = Field(8.0, ge=0, description="Largest backoff ceiling.")
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open a breaker.")
    breaker_cooloff_s: float = Field(30.0, ge=0, description="Open time before a probe.")
    connect_timeout_s: float = Field(10.0, gt=0, description="TCP/TLS connect timeout.")
    read_timeout_s: float = Field(600.0, gt=0, description="Longest silence while reading.")
    first_token_timeout_s: float | None = Field(
        60.0, gt=0, description="Longest wait for the first streamed chunk (then retry)."
    )
    reservation_output_tokens: int = Field(
        4096,
        ge=1,
        description="For a request that sets no max_tokens, to a model the price table gives "
        "no max_output_tokens: the output limit reserved for and sent with it (else the "
        "model's maximum, or less when the remaining budget cannot pay for it).",
    )
    response_cache: bool = Field(
        False, description="Answer repeated deterministic (temperature 0) requests from cache."
    )
    response_cache_ttl_s: float = Field(300.0, gt=0)
    response_cache_entries: int = Field(10_000, ge=1)
    max_connections_per_deployment: int = Field(512, ge=1)
