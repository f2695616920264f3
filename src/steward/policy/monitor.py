"""Behavioural monitoring: tool-call loops, repeated failures, permission denials, token spikes.

Fed only from journaled step results, so a replay after a crash sees the same history and
raises the same alerts at the same steps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from steward.policy.declaration import MonitorPolicy
from steward.policy.text import SORTED_ENCODER


@dataclass(frozen=True)
class Alert:
    rule: str  # loop | tool_failures | denials | token_spike
    message: str
    stop: bool
    refuse: bool = False  # refuse the call at hand instead (repeated calls)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "stop": self.stop,
            "refuse": self.refuse,
        }


class BehaviourMonitor:
    def __init__(self, policy: MonitorPolicy) -> None:
        self.policy = policy
        self._calls: Counter[str] = Counter()
        self._consecutive_failures = 0
        self._denials = 0
        self._model_calls = 0
        self._model_tokens = 0

    def before_tool(self, name: str, arguments: dict[str, Any]) -> Alert | None:
        """Counts identical calls; alerts when this one would reach the limit."""
        signature = name + "\x00" + SORTED_ENCODER.encode(arguments)
        self._calls[signature] += 1
        count = self._calls[signature]
        if count >= self.policy.max_identical_calls:
            message = f"{name} called {count} times with the same arguments, without progress"
            if self.policy.stop_run and not self.policy.refusals_stop_run:
                return Alert("loop", message, stop=False, refuse=True)
            return self._alert("loop", message)
        return None

    def after_tool(self, *, failed: bool, denied: bool) -> Alert | None:
        if denied:
            self._denials += 1
            if self._denials >= self.policy.max_denials:
                message = f"{self._denials} tool calls refused by policy"
                if not self.policy.refusals_stop_run:
                    return Alert("denials", message, stop=False)
                return self._alert("denials", message)
            return None
        self._consecutive_failures = self._consecutive_failures + 1 if failed else 0
        if self._consecutive_failures >= self.policy.max_consecutive_failures:
            return self._alert(
                "tool_failures", f"{self._consecutive_failures} tool calls failed in a row"
            )
        return None

    def after_model(self, tokens: int) -> Alert | None:
        mean = self._model_tokens / self._model_calls if self._model_calls else 0.0
        self._model_calls += 1
        self._model_tokens += tokens
        limit = self.policy.max_tokens_per_call
        if limit is not None and tokens > limit:
            return self._alert("token_spike", f"a model call used {tokens} tokens (limit {limit})")
        if self._model_calls > 2 and mean > 0 and tokens > self.policy.token_spike_factor * mean:
            return self._alert(
                "token_spike", f"a model call used {tokens} tokens, {tokens / mean:.1f}× the mean"
            )
        return None

    def _alert(self, rule: str, message: str) -> Alert:
        return Alert(rule, message, self.policy.stop_run)
