"""Spend caps enforced by atomic reservations: one counter protocol, one implementation per
file (memory, database, Redis), and the guard that turns caps and scopes into counters.
"""

from steward.models.budget.caps import Budget, Reservation, SpendCaps, SpendScope
from steward.models.budget.types import NANO_USD, Limit, SpendCounters

__all__ = ["NANO_USD", "Budget", "Limit", "Reservation", "SpendCaps", "SpendCounters", "SpendScope"]
