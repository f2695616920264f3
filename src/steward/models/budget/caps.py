"""Which caps apply to a call, and the reserve-then-settle protocol around it.

Caps: max cost per run, per end user per day, per API key per day and per month, per tenant per
month (UTC windows), each with tenant- and key-level overrides. A reservation is an upper bound
of the call's cost; settling replaces it with the real cost.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from steward.errors import SpendCapExceeded
from steward.models.budget.types import NANO_USD, Limit, SpendCounters, to_nano

_RUN_COUNTER_TTL_S = 7 * 86_400
_EFFECTIVE_ENTRIES = 10_000


class CapValues(BaseModel):
    """USD limits; None means no cap."""

    run_usd: float | None = Field(None, ge=0, description="Max cost of one agent run.")
    user_daily_usd: float | None = Field(None, ge=0, description="Per end user per UTC day.")
    key_daily_usd: float | None = Field(None, ge=0, description="Per API key per UTC day.")
    key_monthly_usd: float | None = Field(None, ge=0, description="Per API key per UTC month.")
    tenant_monthly_usd: float | None = Field(None, ge=0, description="Per tenant per UTC month.")


class SpendCaps(CapValues):
    """The defaults, plus overrides per tenant id and per API key id (set fields win)."""

    tenants: dict[str, CapValues] = Field(default_factory=dict)
    keys: dict[str, CapValues] = Field(default_factory=dict)

    def effective(self, tenant_id: str, key_id: str | None) -> CapValues:
        values = self.model_dump(include=set(CapValues.model_fields))
        for override in (self.tenants.get(tenant_id), self.keys.get(key_id or "")):
            if override is not None:
                values.update(override.model_dump(exclude_none=True))
        return CapValues.model_validate(values)


@dataclass(frozen=True)
class SpendScope:
    """Who a call is spent for. Agent calls carry a run; proxy calls a key and maybe a user."""

    tenant_id: str
    key_id: str | None = None
    user_id: str | None = None
    run_id: str | None = None
    agent: str | None = None
    run_cap_usd: float | None = None  # the agent's max_cost_usd, when tighter than config


@dataclass(frozen=True)
class Reservation:
    limits: tuple[Limit, ...]
    amount_nano: int


def _day_window(now: datetime) -> tuple[str, datetime]:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%d"), start + timedelta(days=1)


def _month_window(now: datetime) -> tuple[str, datetime]:
    days = calendar.monthrange(now.year, now.month)[1]
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m"), start + timedelta(days=days)


class Budget:
    """Reserves before each model call and settles after, against the configured counters."""

    def __init__(self, counters: SpendCounters, caps: SpendCaps) -> None:
        self.counters = counters
        self.caps = caps
        # Caps are configuration: each (tenant, key)'s overrides are merged once, not per call
        # (the merge goes through Pydantic and showed in the proxy's profile).
        self._effective: dict[tuple[str, str | None], CapValues] = {}

    def effective(self, tenant_id: str, key_id: str | None) -> CapValues:
        found = self._effective.get((tenant_id, key_id))
        if found is None:
            if len(self._effective) >= _EFFECTIVE_ENTRIES:
                self._effective.clear()
            found = self._effective[(tenant_id, key_id)] = self.caps.effective(tenant_id, key_id)
        return found

    def limits(self, scope: SpendScope, now: datetime | None = None) -> list[Limit]:
        now = now or datetime.now(UTC)
        caps = self.effective(scope.tenant_id, scope.key_id)
        day, day_end = _day_window(now)
        month, month_end = _month_window(now)
        limits: list[Limit] = []

        def add(cap: str, usd: float | None, counter: str, ends: datetime | None) -> None:
            if usd is None:
                return
            expires = ends.timestamp() if ends else now.timestamp() + _RUN_COUNTER_TTL_S
            resets = ends.isoformat().replace("+00:00", "Z") if ends else None
            limits.append(Limit(counter, cap, to_nano(usd), expires, resets))

        run_caps = [c for c in (caps.run_usd, scope.run_cap_usd) if c is not None]
        if scope.run_id is not None and run_caps:
            add("run", min(run_caps), f"run:{scope.run_id}", None)
        tenant = scope.tenant_id
        if scope.user_id is not None:
            add("user_daily", caps.user_daily_usd, f"user:{tenant}:{scope.user_id}:{day}", day_end)
        if scope.key_id is not None:
            add("key_daily", caps.key_daily_usd, f"key:{scope.key_id}:{day}", day_end)
            add("key_monthly", caps.key_monthly_usd, f"key:{scope.key_id}:{month}", month_end)
        add("tenant_monthly", caps.tenant_monthly_usd, f"tenant:{tenant}:{month}", month_end)
        return limits

    async def reserve(
        self, scope: SpendScope, estimate_usd: float, *, what: str | None = None
    ) -> Reservation:
        """Hold `estimate_usd` against every cap of `scope`; raises `SpendCapExceeded`, whose
        message names `what` the amount was reserved for."""
        limits = tuple(self.limits(scope))
        amount = max(to_nano(estimate_usd), 0)
        if not limits:
            return Reservation((), amount)
        refused = await self.counters.reserve(limits, amount)
        if refused is not None:
            raise _exceeded(refused, estimate_usd, what)
        return Reservation(limits, amount)

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace the reservation with the real cost (0 to release it after a failure)."""
        if reservation.limits:
            delta = max(to_nano(actual_usd), 0) - reservation.amount_nano
            if delta:
                await self.counters.adjust(reservation.limits, delta)

    async def remaining(self, scope: SpendScope) -> dict[str, float]:
        """USD left under each cap of `scope`, by cap name."""
        result: dict[str, float] = {}
        for limit in self.limits(scope):
            spent = await self.counters.spent(limit.counter)
            result[limit.cap] = (limit.limit_nano - spent) / NANO_USD
        return result


def _exceeded(limit: Limit, estimate_usd: float, what: str | None) -> SpendCapExceeded:
    limit_usd = limit.limit_nano / NANO_USD
    when = f"; it resets at {limit.resets_at}" if limit.resets_at else ""
    target = f" for {what}" if what else ""
    return SpendCapExceeded(
        f"the {limit.cap} spend cap of ${limit_usd:.6g} has no room for this call "
        f"(it would reserve up to ${estimate_usd:.6g}{target}){when}",
        cap=limit.cap,
        limit_usd=limit_usd,
        resets_at=limit.resets_at,
    )
