"""What a model call cost, from a versioned price table kept as data (`prices.json`).

Cached input is priced apart: reads at the cached rate, writes at the cache-write rate.
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

__all__ = ["Cost", "ModelPrice", "PriceTable", "cost_usd", "default_price_table"]

_PER_TOKENS = 1_000_000
# Providers answer with dated snapshots ("gpt-4.1-mini-2025-04-14", "claude-haiku-4-5-20251001")
# that cost what their undated alias costs.
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_PRICE_FIELDS = ("input", "cached_input", "cache_write", "output")


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: float
    cached_input: float
    cache_write: float
    output: float


@dataclass(frozen=True)
class Cost:
    """A priced call; `known` is False when the table had no price, and then `usd` is 0."""

    usd: float
    known: bool
    price_version: str


class PriceTable:
    def __init__(self, version: str, prices: Mapping[str, Mapping[str, ModelPrice]]) -> None:
        self.version = version
        self._prices = {provider: dict(models) for provider, models in prices.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PriceTable:
        try:
            version = str(data["version"])
            prices = {
                provider: {
                    model: ModelPrice(**{f: float(entry[f]) for f in _PRICE_FIELDS})
                    for model, entry in models.items()
                }
                for provider, models in data["models"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                "a price table needs a 'version' and 'models': {provider: {model: "
                f"{{{', '.join(_PRICE_FIELDS)}}}}} in USD per million tokens ({exc!r})"
            ) from exc
        return cls(version, prices)

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the price table {path}: {exc}") from exc
        return cls.from_json(data)

    def price_for(self, provider: str, model: str) -> ModelPrice | None:
        models = self._prices.get(provider, {})
        return models.get(model) or models.get(_SNAPSHOT_SUFFIX.sub("", model))

    def cost(self, provider: str, model: str, usage: Usage) -> Cost:
        price = self.price_for(provider, model)
        if price is None:
            return Cost(usd=0.0, known=False, price_version=self.version)
        # Usage.input_tokens counts cache reads and writes too; only the rest is plain input.
        uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        micro_usd = (
            uncached * price.input
            + usage.cache_read_tokens * price.cached_input
            + usage.cache_write_tokens * price.cache_write
            + usage.output_tokens * price.output
        )
        # Rounded well below a cent's billionth, so sums of prices compare equal in tests.
        return Cost(usd=round(micro_usd / _PER_TOKENS, 12), known=True, price_version=self.version)


@lru_cache(maxsize=1)
def default_price_table() -> PriceTable:
    """The table shipped with Steward (`steward/models/prices.json`)."""
    text = resources.files("steward.models").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable.from_json(json.loads(text))


def cost_usd(provider: str, model: str, usage: Usage, table: PriceTable | None = None) -> Cost:
    """Price one call's usage; an unknown model costs 0.0 with `known=False`."""
    return (table or default_price_table()).cost(provider, model, usage)
