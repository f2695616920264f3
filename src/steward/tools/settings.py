"""Per-tool overrides of the resilience a tool declares (`[steward.tools.<name>]` in
`steward.toml`, or `STEWARD_TOOLS` as a JSON object): unset fields keep the declared value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_RETRIES = 3


class ToolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float | None = Field(
        default=None, gt=0, description="Seconds one attempt may take before it fails."
    )
    retries: int | None = Field(
        default=None,
        ge=0,
        le=MAX_RETRIES,
        description="Further attempts after a retryable failure (at most 3).",
    )
    retry_backoff_s: float | None = Field(
        default=None,
        gt=0,
        description="Bound of the first retry's delay; doubles per retry (full jitter).",
    )
    breaker_failures: int | None = Field(
        default=None,
        ge=0,
        description="Consecutive failed calls (per tenant) that open the tool's circuit "
        "breaker; 0 disables it.",
    )
    breaker_cooloff_s: float | None = Field(
        default=None,
        gt=0,
        description="How long an open breaker answers at once before it lets one call probe.",
    )
