"""Where policy decisions go: the contract, the sink writing span and run events, and the buffer
that releases a run's decisions once per journaled step, so a replay never records them twice.

Every decision, finding, redaction tally and alert is one `PolicyEvent`; the audit trail plugs
in as one more sink (`Steward.decision_sinks`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace

from steward import audit

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


class StepBuffer:
    """Holds a run's decisions until the journaled step they lead to has been recorded.

    Decisions are made from journaled state, so a replay after a crash makes them again. Held
    events are released after a step that ran here (`flush`) and dropped after a step the
    journal replayed (`discard`): what led to a recorded step was released when it ran. Each
    event carries `step`, the number of journal steps before it, for sinks that deduplicate.
    """

    def __init__(self, sink: DecisionSink) -> None:
        self.sink = sink
        self.steps = 0  # journal steps completed so far in this execution
        self._held: list[PolicyEvent] = []

    def record(self, event: PolicyEvent) -> None:
        self._held.append(PolicyEvent(event.kind, {**event.data, "step": self.steps}))

    def flush(self) -> None:
        held, self._held = self._held, []
        for event in held:
            self.sink.record(event)

    def discard(self) -> None:
        self._held.clear()


class AuditSink:
    """Every policy event of one run into its tenant's signed audit trail (queued, in order)."""

    def __init__(
        self, tenant_id: str, run_id: str, agent: str, clean: Callable[[Any], Any]
    ) -> None:
        self._tenant_id = tenant_id
        self._where = {"run_id": run_id, "agent": agent}
        self._clean = clean  # the run's output filter: no secret or PII enters the trail

    def record(self, event: PolicyEvent) -> None:
        data = self._clean({**self._where, **event.data})
        audit.record_later(self._tenant_id, f"policy.{event.kind}", data)
