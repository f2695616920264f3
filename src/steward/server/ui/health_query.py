"""The dashboard's health view: workers and heartbeats, the tenant's queue, breakers, rate-limit
refusals, sandboxes by state and run error rates.

Workers are the fleet's, not a tenant's, and show no tenant data. Breaker and refusal figures
are this server process's (the same counters `/metrics` serves).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select

from steward.models.gateway import Gateway
from steward.observe.metrics import ToolMetrics
from steward.store.database import Database
from steward.store.schema import Run, SandboxRecord, Worker

BREAKER_NAMES = {0: "closed", 1: "half-open", 2: "open"}


@dataclass(frozen=True)
class WorkerRow:
    executor_id: str
    host: str
    pid: int
    state: str
    beat_age_s: float
    beats: int
    fresh: bool


@dataclass(frozen=True)
class ErrorRate:
    window: str
    ended: int
    failed: int

    @property
    def rate(self) -> float:
        return self.failed / self.ended if self.ended else 0.0


@dataclass(frozen=True)
class Health:
    workers: list[WorkerRow]
    queue_depth: int
    oldest_queued_s: float
    sandboxes: dict[str, int]
    error_rates: list[ErrorRate]
    breakers: list[tuple[str, str, str]]  # (kind, name, state)
    refusals: dict[str, float]


def read_health(
    db: Database, tenant_id: str, gateway: Gateway, tools: ToolMetrics, stale_after_s: float
) -> Health:
    now = datetime.now(UTC)
    with db.session() as session:
        workers = list(session.scalars(select(Worker).order_by(Worker.executor_id)))
        depth, oldest = session.execute(
            select(func.count(), func.min(Run.created_at)).where(
                Run.tenant_id == tenant_id, Run.status == "pending"
            )
        ).one()
        sandboxes = dict(
            session.execute(
                select(SandboxRecord.state, func.count())
                .where(SandboxRecord.tenant_id == tenant_id)
                .group_by(SandboxRecord.state)
            ).all()
        )
        rates = []
        for window, span in (("last hour", timedelta(hours=1)), ("last day", timedelta(days=1))):
            ended, failed = session.execute(
                select(func.count(), func.count(Run.id).filter(Run.status == "error")).where(
                    Run.tenant_id == tenant_id, Run.ended_at >= now - span
                )
            ).one()
            rates.append(ErrorRate(window, int(ended), int(failed)))
    wall = time.time()
    return Health(
        workers=[
            WorkerRow(
                w.executor_id,
                w.host,
                w.pid,
                w.state,
                max(wall - w.heartbeat_at, 0.0),
                w.beats,
                w.state == "live" and wall - w.heartbeat_at <= stale_after_s,
            )
            for w in workers
        ],
        queue_depth=int(depth),
        oldest_queued_s=_age_s(oldest, now),
        sandboxes={str(k): int(v) for k, v in sandboxes.items()},
        error_rates=rates,
        breakers=_breakers(gateway, tools, tenant_id),
        refusals=_counter_values(gateway.metrics.runtime.rate_limited),
    )


def _breakers(gateway: Gateway, tools: ToolMetrics, tenant_id: str) -> list[tuple[str, str, str]]:
    found = []
    for labels, value in _gauge_values(gateway.metrics.breaker):
        found.append(("model", f"{labels['deployment']} / {labels['model']}", _state(value)))
    for labels, value in _gauge_values(tools.breaker):
        if labels["tenant"] == tenant_id:
            found.append(("tool", labels["tool"], _state(value)))
    return found


def _state(value: float) -> str:
    return BREAKER_NAMES.get(int(value), "unknown")


def _gauge_values(gauge: Gauge) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for metric in gauge.collect() for s in metric.samples]


def _counter_values(counter: Counter) -> dict[str, float]:
    values: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                values[next(iter(sample.labels.values()), "")] = sample.value
    return values


def _age_s(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max((now - aware).total_seconds(), 0.0)
