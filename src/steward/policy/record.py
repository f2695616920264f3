"""Where policy decisions go: the contract, and the sink writing span events and run events.

Every decision, finding, redaction tally and alert is one `PolicyEvent`; the audit trail plugs
in as one more sink (`Sinks([RunEventSink(...), AuditSink(...)])`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace

EVENT_PREFIX = "steward.policy."


@dataclass(frozen=True)
class PolicyEvent:
    # tool_decision | input_finding | untrusted_finding | taint | monitor | goal | redaction
    kind: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}


class DecisionSink(Protocol):
    def record(self, event: PolicyEvent) -> None: ...


class RunEventSink:
    """Adds a span event to the current span and publishes a run event.

    Routine decisions (a tool call allowed) go to the `debug` stream mode only, so clients
    streaming `updates` see the run's own progress plus what the policy changed or flagged.
    """

    def __init__(self, emit: Callable[[str, Any], None]) -> None:
        self._emit = emit

    def record(self, event: PolicyEvent) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(EVENT_PREFIX + event.kind, _attributes(event.data))
        routine = event.kind == "tool_decision" and event.data.get("verdict") == "allow"
        self._emit("debug" if routine else "updates", {"policy": event.to_json()})


class Sinks:
    def __init__(self, sinks: Sequence[DecisionSink]) -> None:
        self.sinks = tuple(sinks)

    def record(self, event: PolicyEvent) -> None:
        for sink in self.sinks:
            sink.record(event)


def _attributes(data: dict[str, Any]) -> dict[str, str | int | float | bool]:
    result: dict[str, str | int | float | bool] = {}
    for key, value in data.items():
        if isinstance(value, str | int | float | bool):
            result[key] = value
        elif value is not None:
            result[key] = json.dumps(value, default=str, ensure_ascii=False)
    return result
