"""`RunGuard`: one run's policy, the single object the run engine and `Context` consult.

It screens the input, decides each tool call, cleans and taints tool results, watches
behaviour, and filters what leaves the run; every decision goes to its `DecisionSink`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from steward.durable.types import JsonObject
from steward.errors import PolicyBlocked, PolicyStopped
from steward.models.types import ModelResponse
from steward.policy.boundary import Decision, decide
from steward.policy.capabilities import Capabilities
from steward.policy.declaration import AgentPolicy
from steward.policy.detectors import Finding, PatternDetector, Screen
from steward.policy.monitor import Alert, BehaviourMonitor
from steward.policy.output_filter import OutputFilter
from steward.policy.provenance import Source
from steward.policy.record import DecisionSink, PolicyEvent, RunEventSink, Sinks, StepBuffer
from steward.policy.stream_filter import StreamFilter
from steward.policy.taint import TaintState
from steward.policy.text import SORTED_ENCODER, Cleaned, clean_json, json_strings, json_text
from steward.tools.registry import Tool

Emit = Callable[[str, Any], None]
Journal = Callable[[str, Callable[[], Awaitable[JsonObject]]], Awaitable[JsonObject]]
UNTRUSTED_INPUT = "steward.input.untrusted"
"""Run metadata key an entry point (e.g. webhook ingress) sets when the input is third-party."""

_DEFAULT_SCREEN = Screen([PatternDetector()])


def _signature(name: str, arguments: Any) -> str:
    return name + "\x00" + SORTED_ENCODER.encode(arguments)


def default_screen() -> Screen:
    return _DEFAULT_SCREEN


class RunGuard:
    def __init__(
        self,
        policy: AgentPolicy,
        *,
        tools: dict[str, Tool],
        emit: Emit,
        sinks: Sequence[DecisionSink] = (),
        output_model: type[BaseModel] | None = None,
        screen: Screen | None = None,
        input_untrusted: bool = False,
    ) -> None:
        self.policy = policy
        self.tools = tools
        self.output = OutputFilter(policy.output)
        # Policy events are filtered like any other event: finding excerpts may hold secrets.
        self.sink = StepBuffer(
            Sinks([RunEventSink(lambda event, data: emit(event, self.filter_event(data))), *sinks])
        )
        self.output_model = output_model
        self.screen = screen or _DEFAULT_SCREEN
        self.taint = TaintState()
        self.monitor = BehaviourMonitor(policy.monitor)
        self._input_untrusted = input_untrusted
        # Every tool call a model response of this run proposed: a later model call (a planner,
        # an extractor) must not turn a proposed call into one the rules do not bind.
        self._model_calls: set[str] = set()
        if policy.taint == "plan" and isinstance(policy.plan, tuple):
            self.taint.freeze(policy.plan)
        # Plans, provenance and privileges: what may run once untrusted content is in.
        self.capabilities = Capabilities(policy, tools, self.sink.record)
        self.provenance = self.capabilities.provenance
        self.plans = self.capabilities.plans

    # -- the journal -------------------------------------------------------------------------

    def journaled(self, journal: Journal, *, release_first: bool = False) -> Journal:
        """`journal`, releasing held decisions after steps that ran and dropping them after
        steps that were replayed (see `StepBuffer`).

        `release_first` releases them as the step starts instead, for steps whose own events
        must come after the decision (an approval request ends a paused run's stream); only
        a crash inside such a step can then repeat them.
        """

        async def step(name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
            ran = False

            async def run() -> JsonObject:
                nonlocal ran
                ran = True
                if release_first:
                    self.sink.flush()
                return await fn()

            result = await journal(name, run)
            self.sink.steps += 1
            if ran:
                self.sink.flush()
            else:
                self.sink.discard()
            return result

        return step

    def finish(self) -> None:
        """The run ended in this execution: release what no later step will."""
        self.sink.flush()

    # -- input --------------------------------------------------------------------------------

    def screen_input(self, raw: Any) -> Any:
        """Clean the run's input, record what the detectors find, apply goal rules."""
        cleaned, changes = clean_json(raw)
        findings = self._findings(cleaned, changes)
        if findings:
            self.sink.record(
                PolicyEvent("input_finding", {"findings": [f.to_json() for f in findings]})
            )
            if self.policy.screen_input == "block":
                rules = sorted({f.rule for f in findings})
                raise PolicyStopped(f"input rejected by rules {rules}", reason="input_rejected")
        if self._input_untrusted:
            self._mark("input")
        else:
            self.taint.trust(cleaned)
        self.provenance.add(cleaned, Source("request", trusted=not self._input_untrusted))
        self._apply_goals(cleaned)
        return cleaned

    def trust(self, value: Any) -> None:
        """Developer-written text (a system prompt) joins the trusted values."""
        self.taint.trust(value)
        self.provenance.add(value, Source("system", trusted=True))

    def _apply_goals(self, value: Any) -> None:
        text = "\n".join(json_strings(value))
        for rule in self.policy.goals:
            if rule.compiled.search(text):
                self.sink.record(PolicyEvent("goal", {"rule": rule.label, "action": rule.action}))
                if rule.action == "refuse":
                    raise PolicyStopped(rule.message, reason="goal_refused")
                raise PolicyStopped(rule.message, reason="escalated", status="interrupted")

    def _findings(
        self, value: Any, changes: list[Cleaned], text: str | None = None
    ) -> list[Finding]:
        """What the screen finds in `value` (`text`: its `json_text`, when already made)."""
        findings: list[Finding] = []
        removed = sum(c.removed for c in changes)
        smuggled = " ".join(c.smuggled for c in changes if c.smuggled)
        if removed:
            findings.append(
                Finding("unicode", "invisible_characters", 0.9 if smuggled else 0.5, f"{removed}")
            )
        if text is not None and not smuggled and not self.screen.may_find(text):
            return findings
        texts = [*json_strings(value), *([smuggled] if smuggled else [])]
        findings.extend(self.screen.findings_in(texts, None if smuggled else text))
        return findings

    # -- tools --------------------------------------------------------------------------------

    def before_tool(self, name: str, arguments: dict[str, Any]) -> None:
        """Outside the journaled step: loop detection from the run's history."""
        self._alert(self.monitor.before_tool(name, arguments))

    def check_tool(
        self, name: str, arguments: dict[str, Any], call_id: str | None = None
    ) -> Decision:
        """Before the step, from journaled state; raises `PolicyBlocked` for a refusal.

        A `needs_approval` decision is returned for the run's approval gate to ask a person
        (or refused at once when the agent runs unattended, `on_hold="deny"`).
        """
        model_chosen = _signature(name, arguments) in self._model_calls
        tool = self.tools.get(name)
        provenance = self.provenance.arguments(arguments)
        caps = self.capabilities
        verdict = caps.verdict(
            name, provenance, model_chosen=model_chosen, tainted=self.taint.tainted
        )
        decision = decide(
            self.policy,
            name,
            tool,
            arguments,
            self.taint,
            model_chosen=model_chosen,
            provenance=self.provenance,
            plan_passed=verdict is not None and verdict.allowed,
        )
        decision = caps.narrow(decision, arguments, verdict, provenance)
        self.sink.record(
            PolicyEvent(
                "tool_decision",
                {
                    **decision.to_json(),
                    "model_chosen": model_chosen,
                    "provenance": [a.to_json() for a in provenance],
                    **({"plan": verdict.to_json()} if verdict is not None else {}),
                },
            )
        )
        if decision.verdict == "deny":
            raise PolicyBlocked(f"tool {name!r} refused by policy: {decision.reason}", decision)
        if call_id is not None:
            caps.expect(call_id, verdict, provenance)
        return decision

    def admit_result(self, name: str, result: Any) -> dict[str, Any]:
        """Inside the step: clean a tool result and screen it; the journal keeps the verdict."""
        untrusted = name not in self.policy.trusted_tools
        if not untrusted:
            return {"result": result, "untrusted": False}
        text = json_text(result)
        cleaned, changes = (result, []) if text.isascii() else clean_json(result)
        findings = self._findings(cleaned, changes, text if text.isascii() else None)
        if findings:
            data = {"tool": name, "findings": [f.to_json() for f in findings]}
            self.sink.record(PolicyEvent("untrusted_finding", data))
            if self.policy.screen_untrusted == "withhold":
                rules = sorted({f.rule for f in findings})
                cleaned = {"withheld": f"tool result withheld by policy: matched {rules}"}
        return {"result": cleaned, "untrusted": True}

    def after_tool(
        self,
        name: str,
        data: dict[str, Any] | None,
        error: Exception | None,
        call_id: str | None = None,
    ) -> None:
        """After the step, from journaled data only: taint, provenance, plan and monitoring."""
        self.taint.called(name)
        if data is not None and call_id is not None:
            self.capabilities.ran(name, call_id, data)
        if data is not None and data.get("untrusted", True):
            self._mark(f"tool:{name}")
        denied = isinstance(error, PolicyBlocked)
        self._alert(self.monitor.after_tool(failed=error is not None, denied=denied))

    def _mark(self, source: str) -> None:
        if self.taint.mark(source):
            if self.policy.taint == "plan":
                self.taint.freeze(self.taint.called_before_taint)
            self.sink.record(
                PolicyEvent(
                    "taint",
                    {"source": source, "frozen_tools": sorted(self.taint.frozen_tools or ())},
                )
            )

    # -- models -------------------------------------------------------------------------------

    def after_model(self, response: ModelResponse) -> None:
        """From the journaled response: the calls the model chose, and its token use."""
        self._model_calls |= {_signature(c.name, c.arguments) for c in response.tool_calls}
        if self.capabilities.in_policy_call:  # the planner or the reader: not the agent's
            return
        usage = response.usage
        self._alert(self.monitor.after_model(usage.input_tokens + usage.output_tokens))

    def model_chose(self, name: str, arguments: dict[str, Any]) -> None:
        """A call the model made indirectly (a program it wrote, in code mode): decided as the
        model's own choice, so the plan and taint rules bind it."""
        self._model_calls.add(_signature(name, arguments))

    def _alert(self, alert: Alert | None) -> None:
        if alert is None:
            return
        self.sink.record(PolicyEvent("monitor", alert.to_json()))
        if alert.stop:
            raise PolicyStopped(alert.message, reason=alert.rule)
        if alert.refuse:  # a repeated call: refused, and the model may do something else
            raise PolicyBlocked(f"call refused by policy: {alert.message}")

    # -- what leaves the run ------------------------------------------------------------------

    def stream_filter(self) -> StreamFilter:
        return StreamFilter(self.output)

    def filter_event(self, data: Any) -> Any:
        return self.output.json(data)

    def filter_output(self, output: dict[str, Any]) -> dict[str, Any]:
        """Filter the run's output, then hold it to the agent's output model again."""
        counts: Counter[str] = Counter()
        filtered: dict[str, Any] = self.output.json(
            output, counts, keep=self.capabilities.asked_for
        )
        if counts:
            self.sink.record(PolicyEvent("redaction", {"where": "output", "counts": dict(counts)}))
        if self.output_model is not None:
            try:
                self.output_model.model_validate(filtered)
            except ValidationError as exc:
                fields = sorted({".".join(map(str, e["loc"])) for e in exc.errors()})
                raise PolicyStopped(
                    f"the filtered output no longer fits the output model (fields {fields})",
                    reason="output_format",
                ) from exc
        return filtered

    def filter_error(self, error: dict[str, Any]) -> dict[str, Any]:
        filtered: dict[str, Any] = self.output.json(error)
        return filtered
