"""Multi-window multi-burn-rate alerts (the SRE workbook's): an objective's error budget burning
`factor` times too fast over both a long and a short window fires an alert, sent once per firing
as a signed Standard Webhooks POST (the outbound webhooks' secret, network allowlist and pinned
resolution). The alert state row in the database makes "once" hold across processes; a failed
delivery is retried on later checks under the same `webhook-id`, so receivers can dedupe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from steward.slo.config import AgentObjectives, BurnRule, SloConfig
from steward.slo.figures import EndedRun, ended_runs, error_ratio
from steward.store.database import Database
from steward.store.schema import SloAlertState
from steward.webhooks.dispatcher import USER_AGENT, WebhookConfig
from steward.webhooks.signing import signed_headers
from steward.webhooks.targets import WebhookTargetRefused, resolve

LATENCY_BUDGET = 0.05  # a p95 objective lets 5% of runs be slower than its target


@dataclass(frozen=True)
class BurnRate:
    agent: str
    objective: str
    rule: str
    factor: float
    long_burn: float
    short_burn: float

    @property
    def firing(self) -> bool:
        return self.long_burn >= self.factor and self.short_burn >= self.factor


def burn(runs: list[EndedRun], budget: float, latency_target_s: float | None) -> float:
    bad, total = error_ratio(runs, latency_target_s=latency_target_s)
    return (bad / total) / budget if total else 0.0


def _budgets(objectives: AgentObjectives) -> list[tuple[str, float, float | None]]:
    """(objective, error budget, latency target) for the objectives that have a budget."""
    budgets: list[tuple[str, float, float | None]] = []
    if objectives.success_rate is not None:
        budgets.append(("success_rate", 1 - objectives.success_rate, None))
    if objectives.p95_latency_s is not None:
        budgets.append(("p95_latency_s", LATENCY_BUDGET, objectives.p95_latency_s))
    return budgets


def burn_rates(db: Database, config: SloConfig, tenant_id: str, now: datetime) -> list[BurnRate]:
    rates = []
    for agent, objectives in sorted(config.agents.items()):
        longest = max((r.long_minutes for r in config.alerts.rules), default=0)
        runs = ended_runs(db, tenant_id, agent, now - timedelta(minutes=longest), now)
        for objective, budget, target in _budgets(objectives):
            for rule in config.alerts.rules:
                rates.append(_rate(agent, objective, rule, runs, budget, target, now))
    return rates


def _rate(
    agent: str,
    objective: str,
    rule: BurnRule,
    runs: list[EndedRun],
    budget: float,
    target: float | None,
    now: datetime,
) -> BurnRate:
    def within(minutes: float) -> list[EndedRun]:
        start = now - timedelta(minutes=minutes)
        return [r for r in runs if r.ended_at >= start]

    return BurnRate(
        agent,
        objective,
        rule.name,
        rule.factor,
        burn(within(rule.long_minutes), budget, target),
        burn(within(rule.short_minutes), budget, target),
    )


class AlertState:
    """Compare-and-set updates on `slo_alert_state`: exactly one process turns an alert on and
    holds its delivery at a time."""

    def __init__(self, db: Database, tenant_id: str, *, lease_s: float) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.lease_s = lease_s

    def _key(self, rate: BurnRate) -> tuple[Any, ...]:
        return (
            SloAlertState.tenant_id == self.tenant_id,
            SloAlertState.agent == rate.agent,
            SloAlertState.objective == rate.objective,
            SloAlertState.rule == rate.rule,
        )

    def _update(self, rate: BurnRate, *conditions: Any, **values: Any) -> int:
        with self.db.session() as session:
            result = session.execute(
                update(SloAlertState).where(*self._key(rate), *conditions).values(**values)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def _episode(self, rate: BurnRate) -> int | None:
        with self.db.session() as session:
            episode = session.scalar(select(SloAlertState.episode).where(*self._key(rate)))
            return int(episode) if episode is not None else None

    def claim_firing(self, rate: BurnRate, now: datetime) -> int | None:
        """The new episode if this call turned the alert on (and holds its delivery), else None."""
        changed = self._update(
            rate,
            SloAlertState.firing.is_(False),
            firing=True,
            episode=SloAlertState.episode + 1,
            fired_at=now,
            delivery_claimed_at=now,
            delivered_at=None,
            delivery_error=None,
        )
        if changed == 1:
            return self._episode(rate)
        if self._episode(rate) is not None:
            return None  # already firing
        try:
            with self.db.session() as session:
                session.add(
                    SloAlertState(
                        tenant_id=self.tenant_id,
                        agent=rate.agent,
                        objective=rate.objective,
                        rule=rate.rule,
                        firing=True,
                        episode=1,
                        fired_at=now,
                        delivery_claimed_at=now,
                    )
                )
        except IntegrityError:
            return None  # another process inserted it first: it delivers
        return 1

    def claim_redelivery(self, rate: BurnRate, now: datetime) -> int | None:
        """The episode of a firing alert whose delivery failed or whose lease lapsed, if this
        call took it over."""
        lapsed = now - timedelta(seconds=self.lease_s)
        changed = self._update(
            rate,
            SloAlertState.firing.is_(True),
            SloAlertState.delivered_at.is_(None),
            or_(
                SloAlertState.delivery_claimed_at.is_(None),
                SloAlertState.delivery_claimed_at < lapsed,
            ),
            delivery_claimed_at=now,
        )
        return self._episode(rate) if changed == 1 else None

    def record_delivery(self, rate: BurnRate, now: datetime, error: str | None) -> None:
        if error is None:
            self._update(rate, delivered_at=now, delivery_error=None)
        else:  # released: the next check tries again
            self._update(rate, delivery_claimed_at=None, delivery_error=error)

    def resolve(self, rate: BurnRate, now: datetime) -> bool:
        return (
            self._update(rate, SloAlertState.firing.is_(True), firing=False, resolved_at=now) == 1
        )


class SloAlerter:
    """Call `check` periodically (`steward slo alert --every 60`); each firing is delivered
    once, retried on later checks while its delivery fails, always under one webhook id."""

    def __init__(
        self, db: Database, config: SloConfig, webhooks: WebhookConfig, *, tenant_id: str
    ) -> None:
        self.db = db
        self.config = config
        self.webhooks = webhooks
        self.tenant_id = tenant_id
        self.state = AlertState(db, tenant_id, lease_s=webhooks.timeout_s + 5.0)

    async def check(self, now: datetime) -> list[tuple[BurnRate, int]]:
        """Evaluate every rule and deliver the alerts due; the ones delivered now."""
        rates = await asyncio.to_thread(burn_rates, self.db, self.config, self.tenant_id, now)
        delivered = []
        for rate in rates:
            if not rate.firing:
                await asyncio.to_thread(self.state.resolve, rate, now)
                continue
            episode = await asyncio.to_thread(self.state.claim_firing, rate, now)
            if episode is None:
                episode = await asyncio.to_thread(self.state.claim_redelivery, rate, now)
            if episode is None:
                continue
            error = await self._deliver(rate, episode, now)
            await asyncio.to_thread(self.state.record_delivery, rate, now, error)
            if error is None:
                delivered.append((rate, episode))
        return delivered

    async def _deliver(self, rate: BurnRate, episode: int, now: datetime) -> str | None:
        """One signed POST; the error, if it failed."""
        import httpx

        url = self.config.alerts.webhook
        secret = self.webhooks.secret_for(self.tenant_id)
        if url is None or secret is None:
            return "no alert webhook URL or webhook secret is configured"
        key = f"{self.tenant_id}/{rate.agent}/{rate.objective}/{rate.rule}/{episode}"
        message_id = "slo_" + hashlib.sha256(key.encode()).hexdigest()[:24]
        body = json.dumps(
            {
                "type": "slo.burn_rate",
                "timestamp": now.isoformat(),
                "data": {"tenant": self.tenant_id, "episode": episode, **asdict(rate)},
            },
            separators=(",", ":"),
        ).encode()
        try:
            target = await resolve(url, self.webhooks.allowed_networks)
        except WebhookTargetRefused as exc:
            return exc.detail
        headers = signed_headers(secret.get_secret_value(), message_id, int(time.time()), body)
        headers |= {"host": target.host_header, "user-agent": USER_AGENT}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with httpx.AsyncClient(
                timeout=self.webhooks.timeout_s, follow_redirects=False, trust_env=False
            ) as client:
                response = await client.post(
                    target.pinned_url, content=body, headers=headers, extensions=extensions
                )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}".strip()[:1000]
        return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
