"""`RunGuard`: one run's policy, the single object the run engine and `Context` consult.

It screens the input, decides each tool call, cleans and taints tool results, watches
behaviour, and filters what leaves the run; every decision goes to its `DecisionSink`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from steward.durable.types import JsonObject
from steward.errors import PolicyBlocked, PolicyStopped
from steward.models.types import ModelResponse
from steward.policy.boundary import Decision, decide
from steward.policy.declaration import AgentPolicy
from steward.policy.detectors import Finding, PatternDetector, Screen
from steward.policy.monitor import Alert, BehaviourMonitor
from steward.policy.output_filter import OutputFilter
from steward.policy.plan import Plan, PlanState, PlanVerdict
from steward.policy.privileges import check as check_privileges
from steward.policy.provenance import ProvenanceRecord, Source
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
        self.provenance = ProvenanceRecord()
        self.plans = PlanState(tools, self.provenance)
        self._history: list[tuple[str, str]] = []  # (tool, call id) of the calls that ran
        self._pending: dict[str, tuple[int | None, bool]] = {}  # call id -> (plan index, asked)
        self._asked: set[str] = set()  # calls the user's request asked for (trusted arguments)
        self._policy_calls = 0  # model calls the policy itself is about to make

    @contextmanager
    def policy_model_call(self) -> Iterator[None]:
        """Around the planner's or the quarantined reader's model call: its size says nothing
        about the agent's behaviour, so the token monitor skips it."""
        self._policy_calls = 1
        try:
            yield
        finally:
            self._policy_calls = 0

    @property
    def plan_mode(self) -> str:
        """ "strict" or "off": the agent's `plan` option with "auto" resolved."""
        mode = self.policy.plan
        if mode == "auto":
            writes = any(t.writes for t in self.tools.values())
            return "strict" if writes and self.policy.taint != "off" else "off"
        return "strict" if mode == "strict" else "off"

    @property
    def needs_plan(self) -> bool:
        """Planned control flow is on and no plan was made yet."""
        return self.plan_mode == "strict" and not self.plans.active and not self.plans.failed

    def set_plan(self, plan: Plan, *, source: str) -> None:
        """Adopt a plan made from trusted input only (`source` says by whom)."""
        self.plans.adopt(plan, self._history)
        self.sink.record(PolicyEvent("plan", {"source": source, **plan.to_json()}))

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
        verdict = self._plan_verdict(name, provenance, model_chosen)
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
        decision = self._narrow(decision, name, arguments, verdict, provenance)
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
            asked = all(a.trusted for a in provenance) or (verdict is not None and verdict.allowed)
            self._pending[call_id] = (verdict.index if verdict else None, asked)
        return decision

    def _plan_verdict(
        self, name: str, provenance: list[Any], model_chosen: bool
    ) -> PlanVerdict | None:
        if not (model_chosen and self.taint.tainted and self.plan_mode == "strict"):
            return None
        if not self.plans.active:
            if self.policy.plan != "strict":
                return None  # "auto" without a planner (a hand-written loop): the taint rule
            return PlanVerdict(False, None, "no plan was made before untrusted content", ())
        return self.plans.check(name, provenance)

    def _narrow(
        self,
        decision: Decision,
        name: str,
        arguments: dict[str, Any],
        verdict: PlanVerdict | None,
        provenance: list[Any],
    ) -> Decision:
        """Privileges, the plan and unattended mode, applied to what the boundary allowed."""
        if decision.verdict == "deny":
            return decision
        limits = (*self.policy.privileges, *(self.plans.plan.limits if self.plans.plan else ()))
        refusal = check_privileges(limits, name, arguments, self.provenance)
        if refusal is not None:
            return Decision(name, "deny", "privilege", refusal.reason)
        if verdict is not None and not verdict.allowed:
            return Decision(name, "deny", "plan", verdict.reason)
        if decision.verdict == "needs_approval":
            origins = "; ".join(
                f"{a['path']}: {a['origin']}"
                + (f" ({', '.join(a['sources'])})" if a["sources"] else "")
                for a in (p.to_json() for p in provenance)
            )
            plan = self.plans.plan.describe() if self.plans.plan else "no plan"
            if verdict is not None:  # what the call is, against the plan
                plan = f"{verdict.reason} ({plan})"
            reason = f"{decision.reason}. Provenance: {origins or 'no arguments'}. Plan: {plan}"
            if self.policy.on_hold == "deny":
                return Decision(name, "deny", "unattended", f"{reason}; held calls are refused")
            return Decision(name, "needs_approval", decision.rule, reason)
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
        index, asked = self._pending.pop(call_id, (None, False)) if call_id else (None, False)
        if data is not None and call_id is not None:
            untrusted = bool(data.get("untrusted", True))
            source = Source("tool", trusted=not untrusted, tool=name, call_id=call_id)
            self.provenance.add(data.get("result"), source)
            self._history.append((name, call_id))
            self.plans.results[call_id] = data.get("result")
            if index is not None:
                self.plans.bind(call_id, index)
            if asked:
                self._asked.add(call_id)
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
        if self._policy_calls:  # the planner or the reader: not the agent's behaviour
            return
        usage = response.usage
        self._alert(self.monitor.after_model(usage.input_tokens + usage.output_tokens))

    def _alert(self, alert: Alert | None) -> None:
        if alert is None:
            return
        self.sink.record(PolicyEvent("monitor", alert.to_json()))
        if alert.stop:
            raise PolicyStopped(alert.message, reason=alert.rule)
        if alert.refuse:  # a repeated call: refused, and the model may do something else
            raise PolicyBlocked(f"call refused by policy: {alert.message}")

    def record_extract(self, call_id: str, value: Any) -> None:
        """Values the quarantined reader produced: untrusted, whatever shape they have."""
        self.provenance.add(value, Source("extract", trusted=False, call_id=call_id))

    def asked_for(self, value: str) -> bool:
        """Whether the final answer may show `value` (an email, a link): it is trusted, or is a
        whole value of a result the user's request asked for."""
        if self.provenance.trusted(value):
            return True
        return any(
            s.kind == "tool" and s.call_id in self._asked
            for s in self.provenance.whole_value_sources(value)
        )

    # -- what leaves the run ------------------------------------------------------------------

    def stream_filter(self) -> StreamFilter:
        return StreamFilter(self.output)

    def filter_event(self, data: Any) -> Any:
        return self.output.json(data)

    def filter_output(self, output: dict[str, Any]) -> dict[str, Any]:
        """Filter the run's output, then hold it to the agent's output model again."""
        counts: Counter[str] = Counter()
        filtered: dict[str, Any] = self.output.json(output, counts, keep=self.asked_for)
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
