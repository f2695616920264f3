"""Which caps apply to a call: defaults, tenant overrides, key overrides (set fields win)."""

from __future__ import annotations

from steward.models.budget import Budget, SpendCaps
from steward.models.budget.caps import CapValues
from steward.models.budget.memory import MemorySpendCounters


def test_overrides_are_merged_once_per_tenant_and_key_and_reused() -> None:
    caps = SpendCaps(
        tenant_monthly_usd=100,
        key_daily_usd=5,
        tenants={"acme": CapValues(tenant_monthly_usd=10)},
        keys={"k1": CapValues(key_daily_usd=1)},
    )
    budget = Budget(MemorySpendCounters(), caps)

    first = budget.effective("acme", "k1")

    assert (first.tenant_monthly_usd, first.key_daily_usd) == (10, 1)
    assert budget.effective("acme", "k1") is first  # merged once, not on every call
    other = budget.effective("beta", "k2")
    assert (other.tenant_monthly_usd, other.key_daily_usd) == (100, 5)
