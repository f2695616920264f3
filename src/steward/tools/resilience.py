"""What bounds a tool's calls: a timeout per attempt, retries of the failures the tool marks
transient (exponential backoff, full jitter), and a circuit breaker per tool and tenant.

Declared on the tool (`@app.tool(timeout_s=…, retries=…, retry_on=…)`), overridable per tool
name in the settings (`steward.tools.settings.ToolSettings`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from steward.errors import Retryable, UserError
from steward.tools.settings import MAX_RETRIES, ToolSettings

BACKOFF_CAP_S = 8.0


@dataclass(frozen=True)
class ToolResilience:
    timeout_s: float | None = None
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = ()
    """Exception classes that mean "try again"; `steward.Retryable` always does."""
    retry_backoff_s: float = 0.5
    breaker_failures: int = 5
    """Consecutive failed calls, per tenant, that open the breaker; 0 disables it."""
    breaker_cooloff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise UserError(f"timeout_s must be positive, not {self.timeout_s}")
        if not 0 <= self.retries <= MAX_RETRIES:
            raise UserError(f"retries must be between 0 and {MAX_RETRIES}, not {self.retries}")
        if self.breaker_failures < 0 or self.breaker_cooloff_s <= 0 or self.retry_backoff_s <= 0:
            raise UserError("breaker_failures must be >= 0, cool-off and backoff positive")
        for cls in self.retry_on:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise UserError(f"retry_on takes exception classes, not {cls!r}")

    def overridden(self, settings: ToolSettings | None) -> ToolResilience:
        """This declaration with the fields the settings set replaced."""
        if settings is None:
            return self
        changes = settings.model_dump(exclude_none=True)
        return replace(self, **changes) if changes else self

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, (Retryable, *self.retry_on))

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Delay before retry number `retry` (0-based): full jitter over base·2ⁿ, capped."""
        return rng.uniform(0.0, min(BACKOFF_CAP_S, self.retry_backoff_s * 2**retry))
