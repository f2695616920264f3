"""The spend-counter contract: reserve an amount against several capped counters at once, all
or nothing, then settle the difference once the real cost is known.

Amounts are integer nano-USD so that every backend adds exactly, with no float drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

NANO_USD = 1_000_000_000


def to_nano(usd: float) -> int:
    return round(usd * NANO_USD)


@dataclass(frozen=True)
class Limit:
    """One cap applied to one counter: `counter` names the window too (`...:day:2026-11-20`)."""

    counter: str
    cap: str  # run | user_daily | key_daily | key_monthly | tenant_monthly
    limit_nano: int
    expires_at: float  # epoch seconds after which the counter may be dropped
    resets_at: str | None  # ISO 8601, None for caps that never reset (a run's)


class SpendCounters(Protocol):
    async def reserve(self, limits: Sequence[Limit], amount_nano: int) -> Limit | None:
        """Add `amount_nano` to every counter if each stays within its limit and return None;
        otherwise add nothing and return the first limit that refused. Atomic across callers
        and processes sharing the backend."""

    async def adjust(self, limits: Sequence[Limit], delta_nano: int) -> None:
        """Add `delta_nano` (negative to give back) to every counter, unconditionally."""

    async def spent(self, counter: str) -> int:
        """The counter's current value (reserved plus settled), 0 if it does not exist."""

    async def aclose(self) -> None: ...
