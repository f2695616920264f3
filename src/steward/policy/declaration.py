"""What an agent declares about its own safety: taint mode, approvals, goal rules, filters, limits.

Declared as data on `@app.agent(policy=AgentPolicy(...))`, visible through the assistants API;
the defaults are the safe ones (writes after untrusted content need approval, outputs redacted).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

from steward.policy.privileges import ArgumentRule

TaintMode = Literal["approve_writes", "block_writes", "plan", "off"]
"""What may happen once untrusted content is in a run's context.

- `approve_writes`: a write tool needs approval unless every argument is a trusted value.
- `block_writes`: write tools are refused outright.
- `plan`: plan-then-execute; the tools allowed are frozen before the first untrusted read (to
  the declared `plan`, or to the tools called so far), and writes are treated as in
  `approve_writes`.
- `off`: no taint rule (the other layers still apply).
"""

PlanMode = Literal["auto", "strict", "off"]
"""Planned control flow in `Context.tool_loop` (see `steward.policy.plan`).

- `strict`: before untrusted content reaches the model, a planner call that sees only the trusted
  request commits to the calls it needs; afterwards calls outside the plan, and untrusted values
  outside the slots the plan gave them, are refused (the model is told, the run goes on).
- `auto` (the default): `strict` for agents that hold a write tool, `off` otherwise.
- `off`: no planner; the taint rule decides.
"""


@dataclass(frozen=True)
class GoalRule:
    """Requests matching `pattern` (case-insensitive) are refused or escalated to a human."""

    pattern: str
    action: Literal["refuse", "escalate"] = "refuse"
    message: str = "This request is outside what this agent may do."
    name: str = ""

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)

    @property
    def label(self) -> str:
        return self.name or self.pattern


@dataclass(frozen=True)
class OutputPolicy:
    """Filters on everything that leaves Steward: run outputs, streamed events, errors."""

    redact_secrets: bool = True
    redact_pii: bool = True
    strip_foreign_links: bool = True
    allowed_link_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class MonitorPolicy:
    """Behaviour that raises an event, and stops the run when `stop_run` is set."""

    max_identical_calls: int = 3  # the same tool with the same arguments, in one run
    max_consecutive_failures: int = 3
    max_denials: int = 3
    # False (the default): a repeated call is refused (told to the model, which may recover)
    # and denials only raise events; the step cap bounds the run. True: both end the run.
    # With `stop_run=False` neither refuses nor stops: events only.
    refusals_stop_run: bool = False
    token_spike_factor: float = 5.0  # a model call this many times the run's mean so far
    max_tokens_per_call: int | None = None
    stop_run: bool = True


@dataclass(frozen=True)
class AgentPolicy:
    taint: TaintMode = "approve_writes"
    # A PlanMode, or (with taint="plan") the frozen tool set; None behaves as "off".
    plan: PlanMode | tuple[str, ...] | None = "auto"
    privileges: tuple[ArgumentRule, ...] = ()  # per-tool rules on argument values
    on_hold: Literal["wait", "deny"] = "wait"  # "deny": held calls are refused at once
    # How an argument is matched to trusted input: by value or whole tokens ("provenance"), or
    # by substring of trusted text ("substring": the behaviour before provenance, unsafe).
    arguments: Literal["provenance", "substring"] = "provenance"
    approval_required: tuple[str, ...] = ()  # tools that always need a human's approval
    trusted_tools: tuple[str, ...] = ()  # tools whose results do not taint the run
    goals: tuple[GoalRule, ...] = ()
    screen_input: Literal["flag", "block"] = "flag"  # the run's own input
    screen_untrusted: Literal["flag", "withhold"] = "flag"  # tool results and documents
    require_idempotency: bool = True  # write tools must accept a ToolContext
    output: OutputPolicy = field(default_factory=OutputPolicy)
    monitor: MonitorPolicy = field(default_factory=MonitorPolicy)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["privileges"] = [r.to_json() for r in self.privileges]
        data["goals"] = [
            {"name": g.label, "pattern": g.pattern, "action": g.action} for g in self.goals
        ]
        return data
