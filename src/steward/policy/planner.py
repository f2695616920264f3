"""The planner step of `Context.tool_loop` and the quarantined reader of `Context.extract`.

Planning happens before the first tool call that follows untrusted content: one model call,
offered no tools, that sees only trusted text (the developer's system prompt and the user's
request, never a tool result) and answers with a `Plan`. What the planner sees does not depend
on when it runs, so it runs only when needed: a run that reads and then just answers makes no
planner call. Its answer is journaled like any model call, so a replay adopts the same plan. A
later `tool_loop` re-plans only when its whole prompt is trusted.

An answer that is not a plan: with `plan="strict"` nothing may run (an empty plan); with the
default `"auto"` the run falls back to the taint rule (writes with untrusted arguments held
for a person, or refused when `on_hold="deny"`). The planner never sees untrusted text, so an
attacker cannot cause that fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, Protocol

from steward.models.types import Message, ModelResponse
from steward.policy.extract import (
    EXTRACT_SYSTEM,
    Schema,
    as_json,
    extract_prompt,
    parse_extracted,
)
from steward.policy.guard import RunGuard
from steward.policy.plan import PLANNER_SYSTEM, Plan, PlanError, parse_plan, planner_prompt
from steward.policy.record import PolicyEvent
from steward.tools.registry import Tool


class ModelCaller(Protocol):
    async def model(
        self,
        messages: str | Sequence[Message],
        *,
        system: str | None = None,
        tools: bool | Sequence[str] = True,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ModelResponse: ...


class LoopPlanner:
    """One `tool_loop`'s planning: `ensure()` before each tool call."""

    def __init__(
        self,
        ctx: ModelCaller,
        guard: RunGuard | None,
        messages: Sequence[Message],
        tools: Sequence[Tool],
        model: str | None,
    ) -> None:
        self._ctx = ctx
        self._guard = guard
        self._tools = list(tools)
        self._model = model
        self._system = [m.content for m in messages if m.role == "system" and m.content]
        users = [m.content for m in messages if m.role == "user" and m.content]
        self._users: list[str] = []
        self._replan = False
        if guard is None:
            return
        if not guard.taint.tainted:
            # Composed by the developer's code before any untrusted read: trusted input.
            guard.trust(users)
            self._users = users
        elif all(guard.provenance.trusted(text) for text in users):
            self._users = users
            self._replan = guard.plans.active  # a new trusted request: a new plan
        # otherwise the prompt holds untrusted text: the planner sees the system prompt only

    async def ensure(self) -> None:
        guard = self._guard
        if guard is None or guard.capabilities.plan_mode != "strict" or not guard.taint.tainted:
            return
        if (guard.plans.active or guard.plans.failed) and not self._replan:
            return
        self._replan = False
        request = "\n\n".join([*self._system, *self._users]) or "(no request)"
        with guard.capabilities.policy_model_call():
            response = await self._ctx.model(
                planner_prompt(request, self._tools),
                system=PLANNER_SYSTEM,
                tools=False,
                model=self._model,
            )
        try:
            plan = parse_plan(response.content, guard.tools)
        except PlanError as exc:
            strict = guard.policy.plan == "strict"
            data = {"error": str(exc), "fallback": "empty plan" if strict else "taint rule"}
            guard.sink.record(PolicyEvent("plan_invalid", data))
            if not strict:
                guard.plans.failed = True
                return
            plan = Plan()  # nothing may run once untrusted content is in; the model is told
        guard.capabilities.set_plan(plan, source="planner")


async def extract(
    ctx: ModelCaller,
    guard: RunGuard | None,
    schema: Schema,
    text: str,
    *,
    model: str | None,
    call_id: str,
) -> Any:
    """The quarantined reader: a tool-less model call whose answer must fit `schema`."""
    with guard.capabilities.policy_model_call() if guard is not None else nullcontext():
        response = await ctx.model(
            extract_prompt(schema, text), system=EXTRACT_SYSTEM, tools=False, model=model
        )
    value = parse_extracted(schema, response.content)
    if guard is not None:
        guard.capabilities.record_extract(call_id, as_json(value))
    return value
