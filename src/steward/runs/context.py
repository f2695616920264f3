"""`Context`: the only door from agent code to effects. Each model or tool call is a journaled step.

On resume after a crash, recorded steps return their recorded JSON; only the step in flight runs
again, with the same idempotency key. Caps are checked before every step.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from steward.durable.types import JsonObject
from steward.errors import (
    CostLimitExceeded,
    ModelError,
    PolicyBlocked,
    RunError,
    SandboxError,
    SandboxPathRefused,
    SandboxStateError,
    SandboxUnavailable,
    SpendCapExceeded,
    StepLimitExceeded,
    StewardError,
    ToolError,
    WallTimeExceeded,
)
from steward.memory import service as memory_service
from steward.memory.service import TenantMemory
from steward.models.budget import SpendScope
from steward.models.gateway import Gateway
from steward.models.pricing import Cost
from steward.models.types import (
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    Usage,
)
from steward.observe.tracing import Tracing
from steward.policy import planner
from steward.policy.extract import Schema
from steward.policy.guard import RunGuard
from steward.policy.plan import Plan
from steward.runs.agent import Agent
from steward.runs.agent_store import AgentStore, installed
from steward.runs.approval import ApprovalGate
from steward.runs.types import Emit, Journal
from steward.sandbox.run_sandbox import RunSandbox
from steward.security.redaction import REDACTOR
from steward.security.secrets import Secret, SecretStore
from steward.store.runs import RunTotals
from steward.tools.code_mode import CodeMode
from steward.tools.registry import Tool, ToolContext
from steward.tools.runner import ToolRunner, default_runner
from steward.tools.search import SEARCH_TOOL, loaded_by, visible

_ERRORS: dict[str, type[StewardError]] = {
    "SpendCapExceeded": SpendCapExceeded,
    "ToolError": ToolError,
    "ModelError": ModelError,
    "ModelHTTPError": ModelError,
    "ModelStreamError": ModelError,
    "PolicyBlocked": PolicyBlocked,
    "SandboxError": SandboxError,
    "SandboxPathRefused": SandboxPathRefused,
    "SandboxStateError": SandboxStateError,
    "SandboxUnavailable": SandboxUnavailable,
}


@dataclass
class LoopResult:
    """What `Context.tool_loop` ends with: the final answer and the conversation that led to it."""

    text: str
    messages: list[Message]
    tool_results: list[dict[str, Any]] = field(default_factory=list)


class Context:
    """Handed to every agent call as its first argument."""

    def __init__(
        self,
        *,
        run_id: str,
        tenant_id: str,
        thread_id: str | None,
        user_id: str | None,
        agent: Agent,
        tools: dict[str, Tool],
        journal: Journal,
        tracing: Tracing,
        emit: Emit,
        deadline: float,
        guard: RunGuard | None = None,
        gateway: Gateway | None = None,
        sandboxes: Any = None,
        secrets: SecretStore | None = None,
        approvals: ApprovalGate | None = None,
        thread_state: dict[str, Any] | None = None,
        approval_credits: dict[str, float] | None = None,
        tool_runner: ToolRunner | None = None,
        config: dict[str, Any] | None = None,
        run_context: dict[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.tenant_id = tenant_id
        self.thread_id = thread_id
        self.user_id = user_id
        self.agent = agent
        self.totals = RunTotals()
        self._tools = tools
        self._loaded: list[str] = []  # tools `search_tools` loaded (agents with tool_search)
        # Thread pool, timeouts, retries and breakers, shared by every run of the engine.
        self._tool_runner = tool_runner or default_runner()
        # With a policy, decisions are released once per journaled step, never again on replay.
        self._journal = journal if guard is None else guard.journaled(journal)
        self._tracing = tracing
        self._deadline = deadline  # time.time() seconds
        self._guard = guard

        # Secrets this process decrypted never reach the stream, whatever the agent emits.
        def scrubbed(event: str, data: Any) -> None:
            emit(event, REDACTOR.scrub(data))

        self._emit: Emit = scrubbed if guard is None else _filtered_emit(scrubbed, guard)
        self._gateway = gateway
        self._sandboxes = sandboxes  # a SandboxManager, when this process offers sandboxes
        self._secrets = secrets
        self._approvals = approvals
        # Waits already added to `deadline` by the engine when this run was (re)started.
        self._approval_credits = dict(approval_credits or {})
        self._timeout: asyncio.Timeout | None = None
        self.thread_state: dict[str, Any] = dict(thread_state or {})
        """The thread's values when this run started: the previous run's output on the thread."""
        self.config: dict[str, Any] = dict(config or {})
        """LangGraph's run `config` (with `configurable`): the assistant's merged with the run's."""
        self.run_context: dict[str, Any] = dict(run_context or {})
        """LangGraph's run `context`: the assistant's merged with the run's."""

    # -- effects ------------------------------------------------------------------------------

    async def model(
        self,
        messages: str | Sequence[Message],
        *,
        system: str | None = None,
        tools: bool | Sequence[str] = True,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        extra_tools: Sequence[ToolDefinition] = (),
    ) -> ModelResponse:
        """One model call through the gateway, journaled as one step (`extra_tools`: tools
        Steward answers itself, e.g. code mode's `run_code_with_tools`)."""
        limit = self.agent.limits.max_cost_usd
        if limit is not None and self.totals.cost_usd >= limit:
            raise CostLimitExceeded(f"run spent ${self.totals.cost_usd:.4f} of ${limit:.4f}")
        step = self._next_step()
        if system and self._guard is not None:
            self._guard.trust(system)
        gateway = self._gateway
        if gateway is None:
            raise RunError("model calls need the gateway; build the engine through Runtime")
        model_name = model or self.agent.model
        request = ModelRequest(
            model=model_name or "",
            messages=tuple(_as_messages(messages, system)),
            tools=(*(t.definition() for t in self._selected_tools(tools)), *extra_tools),
            max_tokens=max_tokens,
            temperature=temperature,
        )
        scope = SpendScope(
            tenant_id=self.tenant_id,
            user_id=self.user_id,
            run_id=self.run_id,
            agent=self.agent.name,
            run_cap_usd=limit,
        )

        async def call() -> JsonObject:
            # Budget reserve -> attempts with retries/breaker/fallback -> settle -> chat span.
            response, cost = await self._gateway_chat(gateway, request, scope, model_name)
            return {"response": REDACTOR.scrub(response.to_json()), "cost_usd": cost.usd}

        data = await self._step(f"model {model_name or 'default'}", call)
        response = ModelResponse.from_json(data["response"])
        self._account(response.usage, float(data["cost_usd"]))
        self._emit("updates", {"model": {"step": step, "message": response.message().to_json()}})
        if self._guard is not None:
            self._guard.after_model(response)
        return response

    async def tool(
        self, name: str, arguments: dict[str, Any] | None = None, *, call_id: str | None = None
    ) -> Any:
        """One tool call, journaled as one step; raises `ToolError` on failure.

        With a policy, the call is decided before its step (refusals raise `PolicyBlocked`, a
        needs-approval verdict waits for a person) and the result is cleaned and marked
        untrusted before the model can see it.
        """
        guard = self._guard
        tool = self._tools.get(name)
        arguments = arguments or {}
        if tool is None and guard is None:
            raise ToolError(f"tool {name!r} is not available to agent {self.agent.name!r}")
        if guard is not None:
            guard.before_tool(name, arguments)
        step = self._next_step()
        call_id = call_id or f"call_{self.run_id}_{step}"
        if guard is not None:
            tool, arguments = await self._police(guard, step, name, tool, arguments, call_id)
        elif tool is not None and tool.needs_approval:
            arguments = await self.request_approval(
                step, tool, arguments, call_id, reason=f"tool {name!r} requires approval"
            )
        assert tool is not None  # unknown tools were refused above, by the policy or here
        context = ToolContext(
            run_id=self.run_id,
            tenant_id=self.tenant_id,
            step=step,
            idempotency_key=f"{self.run_id}:{step}",
            call_id=call_id,
            sandboxes=self._sandboxes,
            secrets=self._secret_reader(tool=name, step=step),
        )

        runner = self._tool_runner

        async def call() -> JsonObject:
            with self._tracing.execute_tool(name, call_id, step=step) as span:
                # Scrubbed before the journal records it: a tool echoing a secret leaks nothing.
                result = REDACTOR.scrub(await runner.invoke(tool, arguments, context, span=span))
                if guard is None:
                    return {"result": result}
                return guard.admit_result(name, result)

        try:
            data = await self._step(f"tool {name}", call)
        except ToolError as exc:
            if guard is not None:
                guard.after_tool(name, None, exc)
            raise
        if guard is not None:
            guard.after_tool(name, data, None, call_id=call_id)
        if name == SEARCH_TOOL:
            self._loaded.extend(loaded_by(data["result"]))
        self._emit("updates", {"tool": {"step": step, "name": name, "result": data["result"]}})
        return data["result"]

    async def _police(
        self,
        guard: RunGuard,
        step: int,
        name: str,
        tool: Tool | None,
        arguments: dict[str, Any],
        call_id: str,
    ) -> tuple[Tool, dict[str, Any]]:
        """The policy's decision, made from journaled state; approval waits for a person."""
        try:
            decision = guard.check_tool(name, arguments, call_id)
            assert tool is not None  # the allowlist rule refuses unknown tools
            if decision.verdict == "needs_approval":
                reason = f"policy ({decision.rule}): {decision.reason}"
                arguments = await self.request_approval(
                    step, tool, arguments, call_id, reason=reason
                )
        except ToolError as exc:
            guard.after_tool(name, None, exc)
            raise
        return tool, arguments

    def code_mode(self, tools: Sequence[str] | None = None) -> CodeMode:
        """The model writes programs that call the agent's tools (`steward.tools.code_mode`)."""
        chosen = self._tools if tools is None else {n: self._tools[n] for n in tools}
        guard = self._guard
        return CodeMode(self, chosen, guard.model_chose if guard is not None else None)

    def plan(self, plan: Plan | dict[str, Any] | Sequence[str]) -> None:
        """Plan-then-execute, from the developer's code (trusted by construction).

        A `Plan` (or its JSON) fixes the calls and argument slots allowed once untrusted content
        arrives (see `steward.policy.plan`); a list of tool names only fixes the tools, and only
        before the first untrusted read.
        """
        if self._guard is None:
            return
        if isinstance(plan, Plan | dict):
            parsed = plan if isinstance(plan, Plan) else Plan.from_json(plan, self._tools)
            self._guard.capabilities.set_plan(parsed, source="code")
        elif not self._guard.taint.tainted:
            self._guard.taint.freeze(list(plan))

    async def extract(self, schema: Schema, text: str, *, model: str | None = None) -> Any:
        """Typed values from untrusted `text`, read by a model offered no tools.

        `schema` is a Pydantic model (an instance is returned) or a JSON-schema dict; the
        values are recorded as untrusted. Raises `ToolError` when the answer does not fit.
        """
        call_id = f"extract_{self.run_id}_{self.totals.steps + 1}"
        return await planner.extract(self, self._guard, schema, text, model=model, call_id=call_id)

    def sandbox(
        self,
        *,
        backend: str | None = None,
        limits: Any = None,
        env: dict[str, str] | None = None,
        idle_timeout_s: float = 15.0,
        volumes: Sequence[str] = (),
    ) -> RunSandbox:
        """A sandbox for this run: `async with ctx.sandbox() as sb: await sb.exec(code=...)`.

        Creating it, each exec, each file read or write and deleting it are journaled steps.
        """
        return RunSandbox(
            self,
            # Never outlives its run by much.
            lifetime_s=self.agent.limits.timeout_s + 60,
            backend=backend,
            limits=limits,
            env=dict(env or {}),
            idle_timeout_s=idle_timeout_s,
            volumes=list(volumes),
        )

    async def effect(self, name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
        """Run `fn` as one journaled step (caps checked first); used by sandbox handles."""
        self._next_step()
        return await self._step(name, fn)

    @property
    def store(self) -> AgentStore:
        """The tenant's long-term store (`/store/items`): get, put, search, delete."""
        return AgentStore(installed(), self.tenant_id, self.effect)

    @property
    def memory(self) -> TenantMemory:
        """Session values, durable records and semantic memory of the run's tenant and end user
        (`steward.memory`); each call is a journaled step."""
        return memory_service.installed().for_tenant(self.tenant_id, self.user_id, self.effect)

    @property
    def sandboxes(self) -> Any:
        if self._sandboxes is None:
            raise SandboxUnavailable("this Steward process offers no sandboxes")
        return self._sandboxes

    async def secret(self, name: str) -> Secret:
        """A tenant secret by name, decrypted now and not journaled; `.reveal()` it at use.

        The database read, the decryption and the audit record happen in a worker thread: a
        secret read must not stall every other run on this event loop.
        """
        return await asyncio.to_thread(self._secret_reader(), name)

    def _secret_reader(self, **purpose: object) -> Callable[[str], Secret]:
        store = self._secrets
        where: dict[str, object] = {"run_id": self.run_id, "agent": self.agent.name, **purpose}

        def read(name: str) -> Secret:
            if store is None:
                raise ToolError("no secret store is configured for this run")
            return store.secret_for_agent(self.tenant_id, name, purpose=where)

        return read

    async def request_approval(
        self, step: int, tool: Tool, arguments: dict[str, Any], call_id: str, *, reason: str
    ) -> dict[str, Any]:
        """Pause until a person decides this call; the approved (maybe edited) arguments.

        The wall-time cap stops while the run waits and resumes with the time it had left.
        Raises `ToolError` when the call is rejected or the approval expires.
        """
        if self._approvals is None:
            raise ToolError(f"tool {tool.name!r} needs approval, which this runtime cannot ask")
        if self._timeout is not None:
            self._timeout.reschedule(None)
        decision = await self._approvals.review(
            step=step, tool=tool.name, call_id=call_id, arguments=arguments, reason=reason
        )
        credited = self._approval_credits.pop(decision.approval_id, 0.0)
        self._deadline += max(0.0, decision.waited_s - credited)
        if self._timeout is not None:
            remaining = max(0.0, self._deadline - time.time())
            self._timeout.reschedule(asyncio.get_running_loop().time() + remaining)
        if not decision.approved:
            comment = f": {decision.comment}" if decision.comment else ""
            raise ToolError(f"the call to {tool.name!r} was {decision.status}{comment}")
        return decision.arguments

    def bind_timeout(self, scope: asyncio.Timeout) -> None:
        """Let approval waits pause the run's wall-time scope (set by the engine)."""
        self._timeout = scope

    def emit(self, data: Any) -> None:
        """Send a `custom` event to the run's stream (not journaled; may repeat on resume)."""
        self._emit("custom", data)

    # -- the common loop ----------------------------------------------------------------------

    async def tool_loop(
        self,
        prompt: str | Sequence[Message],
        *,
        system: str | None = None,
        tools: bool | Sequence[str] = True,
        model: str | None = None,
        max_tokens: int | None = None,
    ) -> LoopResult:
        """Call the model, run the tools it asks for, feed results back, until it answers.

        A failing tool is reported to the model as an error result rather than ending the run;
        the run's step, time and cost caps bound the loop.
        """
        messages = list(_as_messages(prompt, system))
        if system and self._guard is not None:
            self._guard.trust(system)
        tool_results: list[dict[str, Any]] = []
        # Planned control flow (the agent's `plan` option): before the first call that follows
        # untrusted content, a planner that sees only trusted text fixes what may run.
        plans = planner.LoopPlanner(self, self._guard, messages, self._selected_tools(tools), model)
        while True:
            response = await self.model(messages, tools=tools, model=model, max_tokens=max_tokens)
            messages.append(response.message())
            if not response.tool_calls:
                return LoopResult(response.content, messages, tool_results)
            for call in response.tool_calls:
                await plans.ensure()
                content = await self._tool_result_for_model(call, tool_results)
                messages.append(
                    Message(role="tool", content=content, tool_call_id=call.id, name=call.name)
                )

    async def _tool_result_for_model(
        self, call: ToolCall, tool_results: list[dict[str, Any]]
    ) -> str:
        try:
            result = await self.tool(call.name, call.arguments, call_id=call.id)
        except ToolError as exc:
            tool_results.append({"tool": call.name, "error": str(exc)})
            return json.dumps({"error": str(exc)})
        tool_results.append({"tool": call.name, "result": result})
        return json.dumps(result, default=str)

    # -- bookkeeping --------------------------------------------------------------------------

    def _next_step(self) -> int:
        if time.time() >= self._deadline:
            raise WallTimeExceeded(f"run exceeded {self.agent.limits.timeout_s}s")
        if self.totals.steps >= self.agent.limits.max_steps:
            raise StepLimitExceeded(f"run reached max_steps={self.agent.limits.max_steps}")
        self.totals.steps += 1
        return self.totals.steps

    async def _step(self, name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
        """Journal `fn`; a `RunError` is recorded as data so a replay raises it identically."""

        async def guarded() -> JsonObject:
            try:
                return {"ok": await fn()}
            except (RunError, SpendCapExceeded) as exc:
                message = REDACTOR.scrub_text(str(exc))
                return {"error": {"type": type(exc).__name__, "message": message}}

        data = await self._journal(name, guarded)
        if "error" in data:
            error = data["error"]
            raise _ERRORS.get(error["type"], RunError)(error["message"])
        ok: JsonObject = data["ok"]
        return ok

    def _account(self, usage: Usage, cost: float) -> None:
        self.totals.input_tokens += usage.input_tokens
        self.totals.output_tokens += usage.output_tokens
        self.totals.cache_read_tokens += usage.cache_read_tokens
        self.totals.cost_usd += cost

    def _selected_tools(self, tools: bool | Sequence[str]) -> list[Tool]:
        if tools is True and self.agent.tool_search:
            return visible(self._tools, self._loaded)
        if tools is True:  # a tenant's own MCP tools are shown to its runs only
            return [
                t
                for t in self._tools.values()
                if getattr(t, "tenant", None) in (None, self.tenant_id)
            ]
        if tools is False:
            return []
        unknown = [name for name in tools if name not in self._tools]
        if unknown:
            raise ToolError(f"tools {unknown} are not available to agent {self.agent.name!r}")
        return [self._tools[name] for name in tools]

    async def _gateway_chat(
        self, gateway: Gateway, request: ModelRequest, scope: SpendScope, model: str | None
    ) -> tuple[ModelResponse, Cost]:
        """The gateway call, with text deltas passed through the run guard's stream filter."""
        deltas = self._guard.stream_filter() if self._guard is not None else None

        def on_delta(text: str) -> None:
            shown = deltas.feed(text) if deltas is not None else text
            if shown:
                self._emit("messages", {"delta": shown})

        result = await gateway.chat(request, scope, model=model, on_delta=on_delta)
        rest = deltas.flush() if deltas is not None else ""
        if rest:
            self._emit("messages", {"delta": rest})
        return result


def _filtered_emit(emit: Emit, guard: RunGuard) -> Emit:
    """Events leave the run filtered; message deltas were filtered by their stream filter."""

    def filtered(event: str, data: Any) -> None:
        emit(event, data if event == "messages" else guard.filter_event(data))

    return filtered


def _as_messages(messages: str | Sequence[Message], system: str | None) -> list[Message]:
    result = [Message(role="system", content=system)] if system else []
    if isinstance(messages, str):
        result.append(Message(role="user", content=messages))
    else:
        result.extend(messages)
    return result
