"""Runs in flight as Prometheus gauges, counted in the store whenever `/metrics` is scraped.

`steward_runs_pending` (accepted, holding their thread, waiting for a worker) and
`steward_runs_running`: the queue depth that worker autoscaling follows (the Helm chart's
HPA, through the Prometheus adapter). Every API server reports the same database-wide counts,
so aggregate them across servers with `max`, never `sum`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from steward.store.database import Database
from steward.store.runs import ACTIVE
from steward.store.schema import Run

log = logging.getLogger(__name__)

_HELP = {
    "pending": "Runs accepted and waiting for a worker (queue depth), across the deployment.",
    "running": "Runs executing on a worker now, across the deployment.",
}


class RunGauges(Collector):
    """A collector in the gateway's registry; `collect` blocks on one query (call /metrics'
    exposition in a thread)."""

    def __init__(self, db: Database, registry: CollectorRegistry) -> None:
        self._db = db
        registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for status, text in _HELP.items():
            yield GaugeMetricFamily(f"steward_runs_{status}", text)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(ACTIVE, 0)
        try:
            with self._db.session() as session:
                rows = session.execute(
                    select(Run.status, func.count())
                    .where(Run.status.in_(ACTIVE), Run.active)
                    .group_by(Run.status)
                ).all()
        except SQLAlchemyError as exc:
            # No sample rather than a wrong one: the autoscaler holds its last decision.
            log.warning("runs in flight not counted: %s", type(exc).__name__)
            return
        counts.update({str(status): int(count) for status, count in rows})
        for status, text in _HELP.items():
            yield GaugeMetricFamily(f"steward_runs_{status}", text, value=counts[status])
