"""Tool boundaries: whether one tool call may run, must wait for a human, or is refused.

Rules in order: the agent's allowlist, idempotency for writes, the plan frozen before untrusted
content, declared approvals, then the taint rule for writes. The plan and taint rules bind calls
the model chose; arguments the agent's own code computed are the developer's responsibility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from steward.policy.declaration import AgentPolicy
from steward.policy.provenance import ProvenanceRecord
from steward.policy.taint import TaintState
from steward.tools.registry import Tool

Verdict = Literal["allow", "deny", "needs_approval"]


@dataclass(frozen=True)
class Decision:
    tool: str
    verdict: Verdict
    rule: str
    reason: str

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "verdict": self.verdict,
            "rule": self.rule,
            "reason": self.reason,
        }


def decide(
    policy: AgentPolicy,
    name: str,
    tool: Tool | None,
    arguments: dict[str, Any],
    taint: TaintState,
    *,
    model_chosen: bool = True,
    provenance: ProvenanceRecord | None = None,
    plan_passed: bool = False,
) -> Decision:
    """The decision for calling tool `name` (None: not in the agent's allowlist).

    `plan_passed`: the call already passed the run's plan, which replaces the taint rule.
    """
    if tool is None:
        return Decision(name, "deny", "allowlist", f"tool {name!r} is not allowed for this agent")
    if tool.writes and policy.require_idempotency and tool.context_param is None:
        return Decision(
            name,
            "deny",
            "idempotency",
            "write tools must accept a ToolContext to receive their idempotency key",
        )
    frozen = taint.frozen_tools
    planned = frozen is None or name in frozen
    if policy.taint == "plan" and model_chosen and taint.tainted and not planned:
        return Decision(
            name,
            "deny",
            "plan_frozen",
            f"after untrusted content only the planned tools may run: {sorted(frozen or ())}",
        )
    if name in policy.approval_required or getattr(tool, "needs_approval", False):
        return Decision(
            name, "needs_approval", "declared", "this tool is declared to need approval"
        )
    if tool.writes and model_chosen and taint.tainted and policy.taint != "off" and not plan_passed:
        return _tainted_write(policy, name, arguments, taint, provenance)
    return Decision(
        name, "allow", "write" if tool.writes else "read", "within the agent's boundary"
    )


def _tainted_write(
    policy: AgentPolicy,
    name: str,
    arguments: dict[str, Any],
    taint: TaintState,
    provenance: ProvenanceRecord | None,
) -> Decision:
    sources = ", ".join(dict.fromkeys(taint.sources))
    if policy.taint == "block_writes":
        return Decision(
            name, "deny", "tainted_write", f"write after untrusted content from {sources}"
        )
    if policy.arguments == "provenance" and provenance is not None:
        untrusted = [
            f"{a.path} (from {', '.join(sorted({s.label() for s in a.sources})) or 'no input'})"
            for a in provenance.arguments(arguments)
            if not a.trusted
        ]
    else:
        untrusted = taint.untrusted_arguments(arguments)
    if not untrusted:
        return Decision(
            name, "allow", "trusted_arguments", "every argument comes from trusted input"
        )
    return Decision(
        name,
        "needs_approval",
        "tainted_write",
        f"write after untrusted content from {sources}; arguments {untrusted} "
        "are not from trusted input",
    )
