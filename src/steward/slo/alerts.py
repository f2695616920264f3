"""Multi-window multi-burn-rate alerts (the SRE workbook's): an objective's error budget burning
`factor` times too fast over both a long and a short window fires an alert, sent once per firing
as a signed Standard Webhooks POST (the outbound webhooks' secret, network allowlist and pinned
resolution). The alert state row in the database makes "once" hold across processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
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
    """The compare-and-set on `slo_alert_state` that lets exactly one process send a firing."""

    def __init__(self, db: Database, tenant_id: str) -> None:
        self.db = db
        self.tenant_id = tenant_id

    def _key(self, rate: BurnRate) -> tuple[object, ...]:
        return (
            SloAlertState.tenant_id == self.tenant_id,
            SloAlertState.agent == rate.agent,
            SloAlertState.objective == rate.objective,
            SloAlertState.rule == rate.rule,
        )

    def claim_firing(self, rate: BurnRate, now: datetime) -> int | None:
        """The new episode number if this call turned the alert on, else None."""
        with self.db.session() as session:
            claimed = session.execute(
                update(SloAlertState)
                .where(*self._key(rate), SloAlertState.firing.is_(False))  # type: ignore[arg-type]
                .values(firing=True, episode=SloAlertState.episode + 1, fired_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if claimed == 1:
                episode: int = session.scalar(select(SloAlertState.episode).where(*self._key(rate)))  # type: ignore[arg-type,assignment]
                return episode
        try:
            with self.db.session() as session:
                if session.scalar(select(SloAlertState.episode).where(*self._key(rate))):  # type: ignore[arg-type]
                    return None  # already firing
                session.add(
                    SloAlertState(
                        tenant_id=self.tenant_id,
                        agent=rate.agent,
                        objective=rate.objective,
                        rule=rate.rule,
                        firing=True,
                        episode=1,
                        fired_at=now,
                    )
                )
        except IntegrityError:
            return None  # another process inserted it first: it sends
        return 1

    def resolve(self, rate: BurnRate, now: datetime) -> bool:
        with self.db.session() as session:
            changed: int = session.execute(
                update(SloAlertState)
                .where(*self._key(rate), SloAlertState.firing.is_(True))  # type: ignore[arg-type]
                .values(firing=False, resolved_at=now)
            ).rowcount  # type: ignore[attr-defined]
        return changed == 1

    def record_delivery(
        self, rate: BurnRate, delivered: datetime | None, error: str | None
    ) -> None:
        with self.db.session() as session:
            session.execute(
                update(SloAlertState)
                .where(*self._key(rate))  # type: ignore[arg-type]
                .values(delivered_at=delivered, delivery_error=error)
            )


class SloAlerter:
    def __init__(
        self, db: Database, config: SloConfig, webhooks: WebhookConfig, *, tenant_id: str
    ) -> None:
        self.db = db
        self.config = config
        self.webhooks = webhooks
        self.tenant_id = tenant_id
        self.state = AlertState(db, tenant_id)

    async def check(self, now: datetime) -> list[tuple[BurnRate, int]]:
        """Evaluate every rule; send each alert that starts firing now. Returns those sent
        (with their episode)."""
        rates = await asyncio.to_thread(burn_rates, self.db, self.config, self.tenant_id, now)
        fired = []
        for rate in rates:
            if not rate.firing:
                await asyncio.to_thread(self.state.resolve, rate, now)
                continue
            episode = await asyncio.to_thread(self.state.claim_firing, rate, now)
            if episode is None:
                continue
            error = await self._deliver(rate, episode, now)
            await asyncio.to_thread(self.state.record_delivery, rate, None if error else now, error)
            fired.append((rate, episode))
        return fired

    async def _deliver(self, rate: BurnRate, episode: int, now: datetime) -> str | None:
        """POST the signed alert, retried with the webhooks' backoff; the error, if it failed."""
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
        error: str | None = "not attempted"
        async with httpx.AsyncClient(timeout=self.webhooks.timeout_s, trust_env=False) as client:
            for attempt in range(1, self.webhooks.max_attempts + 1):
                try:
                    target = await resolve(url, self.webhooks.allowed_networks)
                except WebhookTargetRefused as exc:
                    return exc.detail
                headers = signed_headers(
                    secret.get_secret_value(), message_id, int(time.time()), body
                )
                headers |= {"host": target.host_header, "user-agent": USER_AGENT}
                try:
                    response = await client.post(target.pinned_url, content=body, headers=headers)
                    if 200 <= response.status_code < 300:
                        return None
                    error = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                if attempt < self.webhooks.max_attempts:
                    await asyncio.sleep(self.webhooks.backoff_s(attempt))
        return error
