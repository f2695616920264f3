"""A circuit breaker: stop calling something that keeps failing, and probe it after a pause.

Shared by the model gateway (one per deployment) and the tool runner (one per tool and tenant).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `cooloff_s` lets exactly one
    probe through (half-open); the probe's success closes it, its failure re-opens it."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cooloff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooloff_s = cooloff_s
        self._clock = clock
        self._on_change = on_change
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.cooloff_s:
            return "half_open"
        return self._state

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self.cooloff_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go through now (claims the probe when half-open)."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probing:
            return False
        self._set("half_open")
        self._probing = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        if self._state != "closed":
            self._set("closed")

    def failure(self) -> None:
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.failure_threshold:
            self._probing = False
            self._opened_at = self._clock()
            self._set("open")

    def release(self) -> None:
        """The call ended without saying anything about health (e.g. a 400): free the probe."""
        if self._probing:
            self._probing = False
            self._state = "open"  # still cooled off: the next caller probes at once

    def _set(self, state: BreakerState) -> None:
        changed = state != self._state
        self._state = state
        if changed and self._on_change is not None:
            self._on_change(self.name, state)
