"""What a call may cost before it is made: the worst case the request allows (every choice at
its full output limit, at the dearest target of the route), and, for a request that sets no
output limit, the limit the gateway sends for it: what the caller's remaining budget can pay
for, never more than the model's maximum from the price table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from steward.models.budget import NANO_USD, Budget, SpendScope
from steward.models.deployments import Target
from steward.models.pricing import PriceTable

__all__ = ["ReservationPlan", "estimate_usd", "plan_reservation"]

_PER_TOKENS = 1_000_000


@dataclass(frozen=True)
class ReservationPlan:
    input_tokens: int
    choices: int
    output_tokens: int  # per choice
    estimate_usd: float
    # The output limit to put on the forwarded request; None when the request set its own.
    send_max_tokens: int | None
    # The remaining budget, not the model, set that limit: the answer may be cut short.
    limited_by_budget: bool = False

    def describe(self) -> str:
        per_choice = f"{self.output_tokens:,} output tokens"
        output = per_choice if self.choices == 1 else f"{self.choices} × {per_choice}"
        return f"{self.input_tokens:,} input tokens and {output}"


def estimate_usd(
    prices: PriceTable, targets: Sequence[Target], input_tokens: int, output_tokens: int
) -> float:
    """An upper bound of the call's cost over every target it may end up on."""
    bounds = [
        prices.upper_bound_usd(
            t.deployment.provider_name,
            t.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        for t in targets
    ]
    return max((b for b in bounds if b is not None), default=0.0)


def _model_max_output(prices: PriceTable, targets: Sequence[Target]) -> int | None:
    """The smallest maximum among the targets (the one request body must suit each of them)."""
    known = [
        price.max_output_tokens
        for t in targets
        if (price := prices.price_for(t.deployment.provider_name, t.model)) is not None
        and price.max_output_tokens is not None
    ]
    return min(known) if known else None


async def plan_reservation(
    budget: Budget,
    prices: PriceTable,
    scope: SpendScope,
    targets: Sequence[Target],
    *,
    input_tokens: int,
    choices: int = 1,
    max_tokens: int | None,
    default_output_tokens: int,
) -> ReservationPlan:
    """The reservation for a call; with no `max_tokens`, the output limit to send as well."""
    if max_tokens is not None:
        output = choices * max_tokens
        return ReservationPlan(
            input_tokens,
            choices,
            max_tokens,
            estimate_usd(prices, targets, input_tokens, output),
            None,
        )
    model_limit = _model_max_output(prices, targets) or default_output_tokens
    limit = model_limit
    room = await _room_nano(budget, scope)
    if room is not None:
        limit = min(limit, _affordable(prices, targets, input_tokens, choices, room))
    limit = max(limit, 1)  # a budget with no room is refused by the reservation itself
    return ReservationPlan(
        input_tokens,
        choices,
        limit,
        estimate_usd(prices, targets, input_tokens, choices * limit),
        limit,
        limited_by_budget=limit < model_limit,
    )


async def _room_nano(budget: Budget, scope: SpendScope) -> int | None:
    """The least room left under the caps of `scope`; None when no cap applies."""
    remaining = await budget.remaining(scope)
    if not remaining:
        return None
    return round(min(remaining.values()) * NANO_USD)


def _affordable(
    prices: PriceTable, targets: Sequence[Target], input_tokens: int, choices: int, room: int
) -> int:
    """Output tokens per choice that `room` nano-USD pays for after the input."""
    input_nano = round(estimate_usd(prices, targets, input_tokens, 0) * NANO_USD)
    per_token_nano = estimate_usd(prices, targets, 0, _PER_TOKENS) * NANO_USD / _PER_TOKENS
    if per_token_nano <= 0:
        return 2**31 - 1  # free output: only the model's maximum limits it
    # One token short of the exact figure, so rounding never takes the estimate past the room.
    return int((room - input_nano) / (choices * per_token_nano)) - 1
