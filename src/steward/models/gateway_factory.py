"""Builds the gateway a runtime uses from settings: counters backend, price table, ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from steward.errors import ConfigError
from steward.models.budget import Budget, SpendCounters
from steward.models.budget.database import DatabaseSpendCounters
from steward.models.budget.deferred import DeferredReleases
from steward.models.budget.memory import MemorySpendCounters
from steward.models.gateway import Gateway
from steward.models.pricing import load_prices
from steward.observe.tracing import Tracing
from steward.store.database import Database
from steward.store.spend import SpendLedger

if TYPE_CHECKING:
    from steward.config import Settings


def build_counters(
    kind: str, *, db: Database, redis_url: str | None, redis_prefix: str = "steward:"
) -> SpendCounters:
    if kind == "auto":
        kind = "redis" if redis_url else "database"
    if kind == "memory":
        return MemorySpendCounters()
    # Shared counters cost a round trip per write: releases go in batches, off the call's path.
    if kind == "database":
        return DeferredReleases(DatabaseSpendCounters(db))
    if not redis_url:
        raise ConfigError("gateway.spend_counters = 'redis' needs STEWARD_REDIS_URL")
    from steward.models.budget.redis import RedisSpendCounters

    return DeferredReleases(RedisSpendCounters(redis_url, prefix=redis_prefix))


def build_gateway(settings: Settings, db: Database, tracing: Tracing) -> Gateway:
    config = settings.gateway
    counters = build_counters(
        config.spend_counters,
        db=db,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
    )
    return Gateway(
        config,
        default_model=settings.model,
        budget=Budget(counters, config.caps),
        prices=load_prices(config.price_table),
        tracing=tracing,
        ledger=SpendLedger(db),
    )
