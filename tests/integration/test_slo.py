"""SLO figures from stored runs equal the hand-computed values on a fixture, on SQLite and
PostgreSQL; a burn-rate alert fires once, as a signed webhook, however often (and by however many
alerters at once) the rules are checked, and resolves when the burn stops."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from steward.slo.alerts import SloAlerter
from steward.slo.config import AgentObjectives, AlertConfig, SloConfig, load_slo
from steward.slo.report import slo_report
from steward.store import migrate
from steward.store.database import Database
from steward.store.schema import Run, SloAlertState, Span
from steward.webhooks.dispatcher import WebhookConfig
from steward.webhooks.targets import parse_networks
from tests.conftest import free_port
from tests.webhook_receiver import WebhookReceiver

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'slo.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def _run(
    agent: str, status: str, ended: datetime, latency_s: float, cost: float, user: str | None
) -> Run:
    return Run(
        id=str(uuid.uuid4()),
        tenant_id="default",
        thread_id=None,
        agent=agent,
        status=status,
        active=False,
        input={},
        meta={},
        user_id=user,
        cost_usd=cost,
        created_at=ended - timedelta(seconds=latency_s + 1),
        started_at=ended - timedelta(seconds=latency_s),
        ended_at=ended,
    )


def _chat_span(run: Run, start_ns: int, ttft: float) -> Span:
    return Span(
        span_id=uuid.uuid4().hex[:16],
        trace_id=uuid.uuid4().hex,
        tenant_id="default",
        run_id=run.id,
        name="chat dev",
        kind="CLIENT",
        start_ns=start_ns,
        end_ns=start_ns + 1000,
        status_code="UNSET",
        attributes={"gen_ai.response.time_to_first_chunk": ttft},
        events={"events": []},
    )


def test_report_figures_equal_the_hand_computed_values(db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        for i in range(20):
            run = _run(
                "support",
                "error" if i in (3, 11) else "success",
                NOW - timedelta(minutes=30 * (i + 1)),
                latency_s=(i + 1) * 0.1,
                cost=0.001 * (i + 1),
                user="alice" if i % 2 == 0 else "bob",
            )
            session.add(run)
            if i < 10:  # the first model call's TTFT counts, not a later one's
                session.add(_chat_span(run, 1_000 + i, 0.05 * (i + 1)))
                session.add(_chat_span(run, 2_000 + i, 9.0))
        # Outside the figures: too old, cancelled, another agent, still running.
        session.add(_run("support", "error", NOW - timedelta(hours=25), 50.0, 5.0, "alice"))
        session.add(_run("support", "interrupted", NOW - timedelta(hours=1), 50.0, 5.0, "bob"))
        session.add(_run("research", "error", NOW - timedelta(hours=1), 50.0, 5.0, "alice"))
        running = _run("support", "running", NOW, 50.0, 5.0, "alice")
        running.ended_at = None
        session.add(running)
    slo_file = tmp_path / "slo.toml"
    slo_file.write_text(
        "[agents.support]\np95_latency_s = 2.0\nsuccess_rate = 0.9\nttft_p95_s = 0.5\n"
        "cost_per_run_usd = 0.01\ncost_per_user_day_usd = 0.05\nwindow_hours = 24\n"
    )
    report = slo_report(db, load_slo(slo_file), "default", NOW)
    (agent,) = report["agents"]
    assert (agent["runs"], agent["successes"]) == (20, 18)
    figures = agent["figures"]
    # Latencies 0.1..2.0 s: nearest-rank p95 of 20 values is the 19th, 1.9 s.
    assert figures["p95_latency_s"] == pytest.approx(1.9)
    assert figures["success_rate"] == pytest.approx(18 / 20)
    # First-call TTFTs 0.05..0.5 s over 10 runs: the 10th value.
    assert figures["ttft_p95_s"] == pytest.approx(0.5)
    # Costs 0.001..0.020: 0.210 over 20 runs.
    assert figures["cost_per_run_usd"] == pytest.approx(0.0105)
    # One UTC day: alice (odd thousandths 1..19) 0.100, bob (even 2..20) 0.110.
    assert figures["max_cost_per_user_day_usd"] == pytest.approx(0.110)
    met = {row["objective"]: row["met"] for row in agent["objectives"]}
    assert met == {
        "success_rate": True,
        "p95_latency_s": True,
        "ttft_p95_s": True,
        "cost_per_run_usd": False,
        "cost_per_user_day_usd": False,
    }
    json.dumps(report)  # the --json output is plain JSON


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(port=free_port())
    receiver.start()
    yield receiver
    receiver.stop()


def _burning_fixture(db: Database) -> None:
    with db.session() as session:
        for minutes, status in [(1, "error"), (2, "success"), (3, "error"), (4, "success")]:
            session.add(_run("support", status, NOW - timedelta(minutes=minutes), 0.5, 0.0, "u"))
        for minutes in (10, 20, 30, 40, 45, 50, 55, 59):
            session.add(_run("support", "success", NOW - timedelta(minutes=minutes), 0.5, 0.0, "u"))
        for minutes in range(120, 320, 5):  # 40 healthy runs 2 to 5 hours ago
            session.add(_run("support", "success", NOW - timedelta(minutes=minutes), 0.5, 0.0, "u"))


async def test_a_burn_rate_alert_fires_once_signed_and_resolves(
    db: Database, receiver: WebhookReceiver
) -> None:
    _burning_fixture(db)
    config = SloConfig(
        agents={"support": AgentObjectives(success_rate=0.99)},
        alerts=AlertConfig(webhook=receiver.url),
    )
    webhooks = WebhookConfig(
        secret=SecretStr(SECRET), allowed_networks=parse_networks(["127.0.0.0/8"])
    )
    alerters = [SloAlerter(db, config, webhooks, tenant_id="default") for _ in range(3)]

    # Three alerters check at once, then again: one firing, one webhook.
    first = await asyncio.gather(*(a.check(NOW) for a in alerters))
    again = await alerters[0].check(NOW + timedelta(seconds=30))
    fired = [f for batch in first for f in batch]
    assert [(rate.rule, episode) for rate, episode in fired] == [("page", 1)]
    assert again == []
    (delivery,) = receiver.wait_for(1)
    # 1 h: 2 failures in 12 runs, 5 min: 2 in 4, against a 1% budget: 16.7x and 50x.
    # 6 h: 2 in 52 = 3.8x, under the ticket rule's 6x.
    rate = fired[0][0]
    assert rate.long_burn == pytest.approx((2 / 12) / 0.01)
    assert rate.short_burn == pytest.approx((2 / 4) / 0.01)
    payload = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert payload["type"] == "slo.burn_rate"
    assert payload["data"]["agent"] == "support" and payload["data"]["rule"] == "page"
    assert payload["data"]["factor"] == 14.4

    # An hour later the burn has stopped: the alert resolves, without a webhook.
    assert await alerters[1].check(NOW + timedelta(hours=1)) == []
    with db.session() as session:
        states = {s.rule: s for s in session.scalars(select(SloAlertState))}
        assert states["page"].firing is False and states["page"].episode == 1
        assert states["page"].delivered_at is not None and states["page"].delivery_error is None
    assert len(receiver.received) == 1


async def test_a_failed_alert_delivery_is_retried_under_the_same_webhook_id(
    db: Database, receiver: WebhookReceiver
) -> None:
    _burning_fixture(db)
    receiver.statuses = [500]
    config = SloConfig(
        agents={"support": AgentObjectives(success_rate=0.99)},
        alerts=AlertConfig(webhook=receiver.url),
    )
    webhooks = WebhookConfig(
        secret=SecretStr(SECRET), allowed_networks=parse_networks(["127.0.0.0/8"])
    )
    alerter = SloAlerter(db, config, webhooks, tenant_id="default")
    assert await alerter.check(NOW) == []  # the receiver answered 500
    with db.session() as session:
        state = session.scalars(select(SloAlertState)).one()
        assert state.firing is True and state.delivery_error == "HTTP 500"
    retried = await alerter.check(NOW + timedelta(minutes=1))
    assert [(rate.rule, episode) for rate, episode in retried] == [("page", 1)]
    assert await alerter.check(NOW + timedelta(minutes=2)) == []
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert Webhook(SECRET).verify(second.body, second.headers)["data"]["episode"] == 1
    assert len(receiver.received) == 2
