"""What a model call cost, from a versioned price table kept as data (`prices.json`, overridable
by the `gateway.price_table` setting), plus the upper-bound estimate budgets reserve.

Cached input is priced apart: reads at the cached rate, writes at the 5-minute or 1-hour rate;
reasoning output at its own rate; long prompts at the model's long-context tier when it has one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from steward.errors import ConfigError
from steward.models.types import Usage

__all__ = ["Cost", "ModelPrice", "PriceTable", "cost_usd", "default_price_table", "load_prices"]

_PER_TOKENS = 1_000_000
# Providers answer with dated snapshots ("gpt-4.1-mini-2025-04-14", "claude-haiku-4-5-20251001")
# that cost what their undated alias costs.
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_REQUIRED = ("input", "cached_input", "cache_write", "output")


@dataclass(frozen=True)
class TierPrice:
    """USD per million tokens in one tier; optional rates default to the plain ones."""

    input: float
    cached_input: float
    cache_write: float
    cache_write_1h: float
    output: float
    reasoning: float

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> TierPrice:
        base = {name: float(entry[name]) for name in _REQUIRED}
        return cls(
            **base,
            # Where a provider prices no 1-hour write, it has none: a 5-minute write stands in.
            cache_write_1h=float(entry.get("cache_write_1h", base["cache_write"])),
            reasoning=float(entry.get("reasoning", base["output"])),
        )

    def highest_input_rate(self) -> float:
        return max(self.input, self.cached_input, self.cache_write, self.cache_write_1h)

    def highest_output_rate(self) -> float:
        return max(self.output, self.reasoning)


@dataclass(frozen=True)
class ModelPrice(TierPrice):
    """The standard tier plus, for models that have one, the tier for prompts above
    `long_context_threshold` input tokens (the whole call is then priced at that tier)."""

    long_context_threshold: int | None = None
    long_context: TierPrice | None = None
    max_output_tokens: int | None = None  # the longest answer the model can give

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ModelPrice:
        standard = TierPrice.from_json(entry)
        limit = entry.get("max_output_tokens")
        max_output = int(limit) if limit is not None else None
        long_entry = entry.get("long_context")
        if long_entry is None:
            return cls(**standard.__dict__, max_output_tokens=max_output)
        return cls(
            **standard.__dict__,
            long_context_threshold=int(long_entry["threshold_tokens"]),
            long_context=TierPrice.from_json(long_entry),
            max_output_tokens=max_output,
        )

    def tier_for(self, input_tokens: int) -> TierPrice:
        threshold = self.long_context_threshold
        if self.long_context is not None and threshold is not None and input_tokens > threshold:
            return self.long_context
        return self

    def tiers(self) -> tuple[TierPrice, ...]:
        return (self,) if self.long_context is None else (self, self.long_context)


@dataclass(frozen=True)
class Cost:
    """A priced call; `known` is False when the table had no price, and then `usd` is 0.
    `estimated` is True when the usage itself was estimated (a stream ended without usage)."""

    usd: float
    known: bool
    price_version: str
    estimated: bool = False


class PriceTable:
    def __init__(self, version: str, prices: Mapping[str, Mapping[str, ModelPrice]]) -> None:
        self.version = version
        self._prices = {provider: dict(models) for provider, models in prices.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PriceTable:
        try:
            version = str(data["version"])
            prices = {
                provider: {model: ModelPrice.from_json(entry) for model, entry in models.items()}
                for provider, models in data["models"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                "a price table needs a 'version' and 'models': {provider: {model: "
                f"{{{', '.join(_REQUIRED)}[, cache_write_1h, reasoning, long_context, "
                f"max_output_tokens]}}}} in USD "
                f"per million tokens ({exc!r})"
            ) from exc
        return cls(version, prices)

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the price table {path}: {exc}") from exc
        return cls.from_json(data)

    def merged(self, override: PriceTable) -> PriceTable:
        """This table with `override`'s entries on top; the version names both."""
        prices = {provider: dict(models) for provider, models in self._prices.items()}
        for provider, models in override._prices.items():
            prices.setdefault(provider, {}).update(models)
        return PriceTable(f"{self.version}+{override.version}", prices)

    def price_for(self, provider: str, model: str) -> ModelPrice | None:
        models = self._prices.get(provider, {})
        return models.get(model) or models.get(_SNAPSHOT_SUFFIX.sub("", model))

    def cost(self, provider: str, model: str, usage: Usage) -> Cost:
        price = self.price_for(provider, model)
        if price is None:
            return Cost(0.0, known=False, price_version=self.version, estimated=usage.estimated)
        tier = price.tier_for(usage.input_tokens)
        # Usage.input_tokens counts cache reads and writes too; only the rest is plain input.
        writes_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
        writes_5m = usage.cache_write_tokens - writes_1h
        uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        micro_usd = (
            uncached * tier.input
            + usage.cache_read_tokens * tier.cached_input
            + writes_5m * tier.cache_write
            + writes_1h * tier.cache_write_1h
            + (usage.output_tokens - reasoning) * tier.output
            + reasoning * tier.reasoning
        )
        # Rounded well below a cent's billionth, so sums of prices compare equal in tests.
        return Cost(
            usd=round(micro_usd / _PER_TOKENS, 12),
            known=True,
            price_version=self.version,
            estimated=usage.estimated,
        )

    def upper_bound_usd(
        self, provider: str, model: str, *, input_tokens: int, output_tokens: int
    ) -> float | None:
        """The most a call with at most these token counts can cost (for budget reservations);
        None when the model has no price."""
        price = self.price_for(provider, model)
        if price is None:
            return None
        tiers = price.tiers()
        micro_usd = input_tokens * max(t.highest_input_rate() for t in tiers) + (
            output_tokens * max(t.highest_output_rate() for t in tiers)
        )
        return micro_usd / _PER_TOKENS


@lru_cache(maxsize=1)
def default_price_table() -> PriceTable:
    """The table shipped with Steward (`steward/models/prices.json`)."""
    text = resources.files("steward.models").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable.from_json(json.loads(text))


def load_prices(override_path: str | Path | None) -> PriceTable:
    """The shipped table, with the entries of the file at `override_path` on top."""
    table = default_price_table()
    return table.merged(PriceTable.load(override_path)) if override_path else table


def cost_usd(provider: str, model: str, usage: Usage, table: PriceTable | None = None) -> Cost:
    """Price one call's usage; an unknown model costs 0.0 with `known=False`."""
    return (table or default_price_table()).cost(provider, model, usage)
