"""`slo.toml`, next to `steward.toml`: objectives per agent and where alerts go.

[agents.support]
p95_latency_s = 2.0          # 95% of runs end within this
success_rate = 0.99          # share of ended runs that succeed
ttft_p95_s = 1.0             # p95 time to the first model chunk
cost_per_run_usd = 0.01      # mean cost of a run
cost_per_user_day_usd = 1.0  # no end user spends more in a UTC day
window_hours = 672           # the report's rolling window (28 days)

[alerts]
webhook = "https://ops.example.com/hooks/slo"
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steward.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentObjectives(_Strict):
    p95_latency_s: float | None = Field(None, gt=0)
    success_rate: float | None = Field(None, gt=0, lt=1)
    ttft_p95_s: float | None = Field(None, gt=0)
    cost_per_run_usd: float | None = Field(None, ge=0)
    cost_per_user_day_usd: float | None = Field(None, ge=0)
    window_hours: float = Field(24 * 28, gt=0)


class BurnRule(_Strict):
    """Fire when both windows burn the error budget at least `factor` times too fast."""

    name: str
    long_minutes: float = Field(gt=0)
    short_minutes: float = Field(gt=0)
    factor: float = Field(gt=0)


# The SRE workbook's multi-window multi-burn-rate pair: 2% of a 30-day budget in an hour,
# 5% in six hours.
DEFAULT_RULES = [
    BurnRule(name="page", long_minutes=60, short_minutes=5, factor=14.4),
    BurnRule(name="ticket", long_minutes=360, short_minutes=30, factor=6.0),
]


class AlertConfig(_Strict):
    webhook: str | None = None
    rules: list[BurnRule] = Field(default_factory=lambda: list(DEFAULT_RULES))


class SloConfig(_Strict):
    agents: dict[str, AgentObjectives] = Field(default_factory=dict)
    alerts: AlertConfig = Field(default_factory=AlertConfig)


def load_slo(path: Path) -> SloConfig:
    if not path.exists():
        raise UserError(f"no SLO file at {str(path)!r}: write one next to steward.toml")
    try:
        return SloConfig.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise UserError(f"{path}: {exc}") from exc
