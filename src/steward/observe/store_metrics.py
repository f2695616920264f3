"""Metrics read from the database at scrape time: queue depth and oldest queued age, runs
running, live
workers, pending approvals, sandboxes by state and created, webhook delivery attempts.

The database is what every process shares, so any one server's `/metrics` reports the same
fleet-wide figures; nothing is counted in one process's memory that another would miss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from steward.store.database import Database
from steward.store.runs import ACTIVE
from steward.store.schema import Approval, OutboundWebhookAttempt, Run, SandboxRecord, Worker

log = logging.getLogger("steward.metrics")

_FAILED_ATTEMPT = case(
    (OutboundWebhookAttempt.error.is_not(None), 1),
    (OutboundWebhookAttempt.status_code.is_(None), 1),
    (OutboundWebhookAttempt.status_code < 200, 1),
    (OutboundWebhookAttempt.status_code >= 300, 1),
    else_=0,
)


class StoreCollector(Collector):
    def __init__(self, db: Database, *, stale_after_s: float) -> None:
        self.db = db
        self.stale_after_s = stale_after_s

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape during an outage reports the rest, not a 500
            log.warning("database metrics unavailable: %s", exc)

    def _collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self.db.session() as session:
            in_flight = {
                status: (count, oldest)
                for status, count, oldest in session.execute(
                    select(Run.status, func.count(), func.min(Run.created_at))
                    .where(Run.status.in_(ACTIVE), Run.active)
                    .group_by(Run.status)
                )
            }
            workers = session.execute(
                select(Worker.state, Worker.heartbeat_at).where(Worker.state == "live")
            ).all()
            approvals = session.scalar(
                select(func.count()).select_from(Approval).where(Approval.status == "pending")
            )
            sandboxes = session.execute(
                select(SandboxRecord.state, func.count()).group_by(SandboxRecord.state)
            ).all()
            attempts = session.execute(select(func.count(), func.sum(_FAILED_ATTEMPT))).one()
        depth, oldest = in_flight.get("pending", (0, None))
        # Depth plus running is what the worker autoscaler follows (deploy/helm's adapter rule);
        # every server reports the same deployment-wide counts: aggregate with max, not sum.
        yield _gauge("steward_queue_depth", "Runs accepted and not yet started.", depth)
        yield _gauge(
            "steward_queue_oldest_age_seconds",
            "Age of the oldest run waiting to start (0 when none waits).",
            _age_s(oldest),
        )
        yield _gauge(
            "steward_runs_running",
            "Runs executing on a worker now.",
            in_flight.get("running", (0,))[0],
        )
        now = time.time()
        fresh = sum(1 for _, beat in workers if now - beat <= self.stale_after_s)
        yield _gauge("steward_workers", "Registered workers whose heartbeat is fresh.", fresh)
        yield _gauge("steward_approvals_pending", "Tool calls waiting for a person.", approvals)
        states = GaugeMetricFamily(
            "steward_sandboxes", "Sandboxes by state (deleted ones included).", labels=["state"]
        )
        for state, count in sandboxes:
            states.add_metric([state], count)
        yield states
        created = CounterMetricFamily("steward_sandbox_creates", "Sandboxes created.")
        created.add_metric([], sum(count for _, count in sandboxes))
        yield created
        sent = CounterMetricFamily(
            "steward_webhook_delivery_attempts", "Outbound webhook HTTP attempts."
        )
        sent.add_metric([], attempts[0] or 0)
        yield sent
        failed = CounterMetricFamily(
            "steward_webhook_delivery_failures",
            "Outbound webhook attempts that failed (no answer or a non-2xx status).",
        )
        failed.add_metric([], attempts[1] or 0)
        yield failed


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value or 0))


def _age_s(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max((datetime.now(UTC) - aware).total_seconds(), 0.0)
