"""The workflow body: what a worker does with one run, from its start to its recorded end.

`RunEngine` accepts, dispatches and cancels runs; the durable core calls `RunExecutor.execute`
for each run it starts or recovers, in whichever process took the run.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, timedelta
from typing import Any

from steward import audit
from steward.app import Steward
from steward.durable.types import DurableEngine, JsonObject
from steward.errors import (
    ConfigError,
    PolicyBlocked,
    RunCancelled,
    RunError,
    RunSignal,
    ToolError,
    UserError,
    WallTimeExceeded,
)
from steward.models.gateway import Gateway
from steward.observe.context import run_scope
from steward.observe.tracing import Tracing
from steward.policy.guard import UNTRUSTED_INPUT, RunGuard
from steward.policy.record import AuditSink
from steward.runs.agent import Agent
from steward.runs.approval import ApprovalGate
from steward.runs.context import Context
from steward.runs.run_config import recorded
from steward.sandbox.manager import SandboxManager
from steward.security.redaction import REDACTOR
from steward.security.secrets import SecretStore
from steward.store.approvals import ApprovalStore
from steward.store.hot import HotState
from steward.store.outage import until_reachable
from steward.store.runs import RunStart, RunStore, RunTotals, is_open
from steward.store.schema import Run, utcnow
from steward.tools.runner import ToolRunner

log = logging.getLogger("steward.runs")

TERMINAL_EVENT = "end"
# Stop reasons that mean a declared limit ended the run: each is an audited `cap.hit`.
CAP_REASONS = frozenset({"max_steps", "max_cost", "wall_time", "spend_cap"})
INTERNAL_ERROR = "internal_error"  # stop reason of a run that Steward itself failed to carry


def run_channel(run_id: str) -> str:
    return f"run:{run_id}"


@dataclass(frozen=True)
class Outcome:
    status: str
    stop_reason: str
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class RunExecutor:
    """Executes runs in this process; shares `tasks` and `cancelling` with the engine, which
    cancels a run here by cancelling its task."""

    app: Steward
    store: RunStore
    approvals: ApprovalStore
    durable: DurableEngine
    hot: HotState
    tracing: Tracing
    tool_runner: ToolRunner
    promote_next: Callable[[str, str | None], Awaitable[None]]
    gateway: Gateway | None = None
    sandboxes: SandboxManager | None = None
    secrets: SecretStore | None = None
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    cancelling: set[str] = field(default_factory=set)
    # Called with a run id when a run of this process that has a webhook ends.
    finished_listeners: list[Callable[[str], None]] = field(default_factory=list)
    detached: set[asyncio.Task[Any]] = field(default_factory=set)
    # The code of a run's deployed version (steward.rollout); None: the app's own code.
    code_for: Callable[[Run], Awaitable[tuple[Steward, Agent] | None]] | None = None

    async def execute(self, run_id: str, payload: JsonObject) -> JsonObject:
        start = await until_reachable(self.store.begin_run, run_id, utcnow())
        if start is None or not is_open(start.run):
            return {"status": start.run.status if start else "missing"}
        run = start.run
        metrics = self.gateway.metrics.runtime if self.gateway is not None else None
        if start.first and metrics is not None:
            metrics.run_started(run.agent)
        task = asyncio.current_task()
        if task is not None:
            self.tasks[run_id] = task
        try:
            with run_scope(run_id, run.tenant_id):
                if start.thread_unreadable is not None:
                    raise start.thread_unreadable
                outcome, totals = await self._run_agent(run, payload, start)
        except Exception as exc:
            # A failure around the agent (a stored row that cannot be read, a decision sink
            # that raises) still ends the run: otherwise it would hold its thread forever.
            log.exception("run %s failed outside its agent", run_id)
            outcome, totals = _failure(INTERNAL_ERROR, exc), RunTotals()
        finally:
            self.tasks.pop(run_id, None)
            self.cancelling.discard(run_id)
        outcome = Outcome(  # no secret this process decrypted leaves in a result
            outcome.status,
            outcome.stop_reason,
            REDACTOR.scrub(outcome.output),
            REDACTOR.scrub(outcome.error),
        )
        outcome = await self._record_end(run_id, outcome, totals)
        if metrics is not None:
            metrics.run_ended(run, outcome, totals)
        if outcome.stop_reason in CAP_REASONS:
            audit.record_later(
                run.tenant_id,
                "cap.hit",
                {
                    "run_id": run_id,
                    "agent": run.agent,
                    "cap": outcome.stop_reason,
                    **asdict(totals),
                },
            )
        channel = run_channel(run_id)
        if outcome.output is not None:
            self.hot.publish_nowait(channel, {"event": "values", "data": outcome.output})
        elif outcome.error is not None:
            self.hot.publish_nowait(channel, {"event": "error", "data": outcome.error})
        self.hot.publish_nowait(channel, {"event": TERMINAL_EVENT, "data": {}})
        self._start_detached(self.promote_next(run.tenant_id, run.thread_id))
        if run.webhook is not None:  # the only thing a listener does (saves a query per run)
            for listener in self.finished_listeners:
                listener(run_id)
        return {"status": outcome.status, "stop_reason": outcome.stop_reason}

    async def _record_end(self, run_id: str, outcome: Outcome, totals: RunTotals) -> Outcome:
        """Write the run's terminal state; should the store refuse it (an output it cannot
        hold, say), end the run in error instead of leaving it open."""
        try:
            await until_reachable(self._finish, run_id, outcome, totals)
            return outcome
        except Exception as exc:
            log.exception("could not record how run %s ended", run_id)
            # Not the driver's message: it quotes the very values the store refused.
            error = {
                "error": type(exc).__name__,
                "message": "the run's outcome could not be stored",
            }
            failed = Outcome("error", INTERNAL_ERROR, error=error)
            await until_reachable(self._finish, run_id, failed, totals)
            return failed

    def _finish(self, run_id: str, outcome: Outcome, totals: RunTotals) -> None:
        self.store.finish_run(
            run_id,
            status=outcome.status,
            stop_reason=outcome.stop_reason,
            output=outcome.output,
            error=outcome.error,
            totals=totals,
        )

    def _start_detached(self, work: Any) -> None:
        """Run `work` outside this workflow's context, so the durable core does not see it as
        a step of the finished run (a crash before it runs is covered by recovery at start)."""
        task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self.detached.add(task)
        task.add_done_callback(self.detached.discard)

    async def _run_agent(
        self, run: Run, payload: JsonObject, start: RunStart
    ) -> tuple[Outcome, RunTotals]:
        app, agent = self.app, self.app.agents.get(payload["agent"])
        if self.code_for is not None:  # a run executes the version it started on
            app, agent = await self.code_for(run) or (app, agent)
        if agent is None:
            error = {"error": "UnknownAgent", "message": f"agent {payload['agent']!r} is gone"}
            return Outcome("error", "agent_missing", error=error), RunTotals()
        started = run.started_at or utcnow()
        if started.tzinfo is None:  # SQLite hands back naive UTC datetimes
            started = started.replace(tzinfo=UTC)
        # Time spent waiting for people does not count against the wall-time cap; a run
        # recovered after (or during) a pause gets that time back before it replays.
        credits: dict[str, float] = {}
        if not start.first:  # a run's first start has no approvals behind it yet
            credits = await asyncio.to_thread(self.approvals.waits, run.tenant_id, run.id)
        limit = timedelta(seconds=agent.limits.timeout_s + sum(credits.values()))
        deadline = (started + limit).timestamp()
        channel = run_channel(run.id)

        def emit(event: str, data: Any) -> None:
            self.hot.publish_nowait(channel, {"event": event, "data": data})

        tools = app.tools_for(agent)
        guard = RunGuard(
            agent.policy,
            tools=tools,
            emit=emit,
            output_model=agent.output_model,
            input_untrusted=bool((run.meta or {}).get(UNTRUSTED_INPUT)),
            sinks=[
                *self.app.decision_sinks,
                AuditSink(run.tenant_id, run.id, agent.name, lambda data: guard.filter_event(data)),
            ],
        )

        async def publish(event: str, data: Any) -> int | str:
            # Approval events carry a call's arguments: filtered like every event of the run.
            return await self.hot.publish(
                channel, {"event": event, "data": guard.filter_event(data)}
            )

        gate = ApprovalGate(
            store=self.approvals,
            journal=guard.journaled(self.durable.step, release_first=True),
            receive=self.durable.receive,
            publish=publish,
            tenant_id=run.tenant_id,
            run_id=run.id,
            thread_id=run.thread_id,
            timeout_s=agent.limits.approval_timeout_s,
        )
        settings = recorded(run.meta)  # the run's merged config/context, as it was started
        ctx = Context(
            run_id=run.id,
            tenant_id=run.tenant_id,
            thread_id=run.thread_id,
            user_id=run.user_id,
            agent=agent,
            tools=tools,
            journal=self.durable.step,
            gateway=self.gateway,
            tracing=self.tracing,
            emit=emit,
            deadline=deadline,
            guard=guard,
            sandboxes=self.sandboxes,
            secrets=self.secrets,
            approvals=gate,
            thread_state=start.thread_values,
            approval_credits=credits,
            tool_runner=self.tool_runner,
            config=settings.config,
            run_context=settings.context,
        )
        with self.tracing.invoke_agent(agent.name, conversation_id=run.thread_id) as span:
            outcome = await self._call_agent(agent, ctx, guard, payload["input"], deadline)
            if outcome.error is not None:
                outcome = replace(outcome, error=guard.filter_error(outcome.error))
            guard.finish()
            if outcome.status != "success":
                span.set_attribute("error.type", outcome.stop_reason)
            span.set_attribute("steward.run.status", outcome.status)
        return outcome, ctx.totals

    async def _call_agent(
        self, agent: Agent, ctx: Context, guard: RunGuard, raw_input: Any, deadline: float
    ) -> Outcome:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.time())) as scope:
                ctx.bind_timeout(scope)
                clean_input = guard.screen_input(raw_input)
                result = await agent.fn(ctx, agent.input_model.model_validate(clean_input))
            output = guard.filter_output(agent.dump_output(result))
            return Outcome("success", "completed", output=output)
        except TimeoutError:
            if not scope.expired():
                return _failure("agent_error", TimeoutError("the agent raised TimeoutError"))
            return _signal(WallTimeExceeded(f"run exceeded {agent.limits.timeout_s}s"))
        except RunSignal as signal:
            return _signal(signal)
        except asyncio.CancelledError:
            if ctx.run_id not in self.cancelling:
                raise  # shutting down: leave the run pending for recovery
            return _signal(RunCancelled("cancelled"))
        except PolicyBlocked as exc:
            return _failure("policy_blocked", exc)
        except ToolError as exc:
            return _failure("tool_error", exc)
        except RunError as exc:
            return _failure("model_error", exc)
        except ConfigError as exc:  # e.g. the agent's model needs a key nobody set
            return _failure("config_error", exc)
        except UserError as exc:
            return _failure("agent_error", exc)
        except Exception as exc:
            log.exception("agent %s raised in run %s", agent.name, ctx.run_id)
            return _failure("agent_error", exc)


def _signal(signal: RunSignal) -> Outcome:
    error = {"error": type(signal).__name__, "message": str(signal)}
    return Outcome(signal.status, signal.reason, error=error)


def _failure(reason: str, exc: BaseException) -> Outcome:
    return Outcome("error", reason, error={"error": type(exc).__name__, "message": str(exc)})
