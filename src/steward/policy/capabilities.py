"""What may run once untrusted content is in a run: its plan, value provenance and privileges.

One per run, owned by its `RunGuard`, fed only from journaled data (the planner's answer, tool
results), so a replay rebuilds the same state and takes the same decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from steward.policy.boundary import Decision
from steward.policy.declaration import AgentPolicy
from steward.policy.plan import Plan, PlanState, PlanVerdict
from steward.policy.privileges import check as check_privileges
from steward.policy.provenance import ArgumentProvenance, ProvenanceRecord, Source
from steward.policy.record import PolicyEvent
from steward.tools.registry import Tool


class Capabilities:
    def __init__(
        self, policy: AgentPolicy, tools: dict[str, Tool], record: Callable[[PolicyEvent], None]
    ) -> None:
        self.policy = policy
        self.tools = tools
        self._record = record
        self.provenance = ProvenanceRecord()
        self.plans = PlanState(tools, self.provenance)
        self._history: list[tuple[str, str]] = []  # (tool, call id) of the calls that ran
        self._pending: dict[str, tuple[int | None, bool]] = {}  # call id -> (plan index, asked)
        self._asked: set[str] = set()  # calls the user's request asked for (trusted arguments)
        self.in_policy_call = False

    @property
    def plan_mode(self) -> str:
        """ "strict" or "off": the agent's `plan` option with "auto" resolved."""
        mode = self.policy.plan
        if mode == "auto":
            writes = any(t.writes for t in self.tools.values())
            return "strict" if writes and self.policy.taint != "off" else "off"
        return "strict" if mode == "strict" else "off"

    def set_plan(self, plan: Plan, *, source: str) -> None:
        """Adopt a plan made from trusted input only (`source` says by whom)."""
        self.plans.adopt(plan, self._history)
        self._record(PolicyEvent("plan", {"source": source, **plan.to_json()}))

    @contextmanager
    def policy_model_call(self) -> Iterator[None]:
        """Around the planner's or the quarantined reader's model call: its size says nothing
        about the agent's behaviour, so the token monitor skips it."""
        self.in_policy_call = True
        try:
            yield
        finally:
            self.in_policy_call = False

    # -- deciding a call ----------------------------------------------------------------------

    def verdict(
        self,
        name: str,
        provenance: list[ArgumentProvenance],
        *,
        model_chosen: bool,
        tainted: bool,
    ) -> PlanVerdict | None:
        """The plan's word on a call (None: the plan does not bind it)."""
        if not (model_chosen and tainted and self.plan_mode == "strict"):
            return None
        if not self.plans.active:
            if self.policy.plan != "strict":
                return None  # "auto" without a plan (a hand-written loop): the taint rule
            return PlanVerdict(False, None, "no plan was made before untrusted content", ())
        return self.plans.check(name, provenance)

    def narrow(
        self,
        decision: Decision,
        arguments: dict[str, Any],
        verdict: PlanVerdict | None,
        provenance: list[ArgumentProvenance],
    ) -> Decision:
        """Privileges, the plan and unattended mode, applied to what the boundary allowed."""
        name = decision.tool
        if decision.verdict == "deny":
            return decision
        limits = (*self.policy.privileges, *(self.plans.plan.limits if self.plans.plan else ()))
        refusal = check_privileges(limits, name, arguments, self.provenance)
        if refusal is not None:
            return Decision(name, "deny", "privilege", refusal.reason)
        if verdict is not None and not verdict.allowed:
            return Decision(name, "deny", "plan", verdict.reason)
        if decision.verdict != "needs_approval":
            return decision
        # What a reviewer needs: where each argument came from, and the call against the plan.
        origins = "; ".join(
            f"{a['path']}: {a['origin']}"
            + (f" ({', '.join(a['sources'])})" if a["sources"] else "")
            for a in (p.to_json() for p in provenance)
        )
        plan = self.plans.plan.describe() if self.plans.plan else "no plan"
        if verdict is not None:
            plan = f"{verdict.reason} ({plan})"
        reason = f"{decision.reason}. Provenance: {origins or 'no arguments'}. Plan: {plan}"
        if self.policy.on_hold == "deny":
            return Decision(name, "deny", "unattended", f"{reason}; held calls are refused")
        return Decision(name, "needs_approval", decision.rule, reason)

    def expect(
        self, call_id: str, verdict: PlanVerdict | None, provenance: list[ArgumentProvenance]
    ) -> None:
        """An allowed call is about to run: which planned call it fills, whether it was asked."""
        asked = all(a.trusted for a in provenance) or (verdict is not None and verdict.allowed)
        self._pending[call_id] = (verdict.index if verdict else None, asked)

    # -- what calls returned ------------------------------------------------------------------

    def ran(self, name: str, call_id: str, data: dict[str, Any]) -> None:
        """A call's journaled result: its values' provenance, and its place in the plan."""
        index, asked = self._pending.pop(call_id, (None, False))
        untrusted = bool(data.get("untrusted", True))
        source = Source("tool", trusted=not untrusted, tool=name, call_id=call_id)
        self.provenance.add(data.get("result"), source)
        self._history.append((name, call_id))
        self.plans.results[call_id] = data.get("result")
        if index is not None:
            self.plans.bind(call_id, index)
        if asked:
            self._asked.add(call_id)

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
