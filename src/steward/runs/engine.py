"""The run engine: accepts runs, executes each as one durable workflow, enforces caps, cancels.

It knows nothing of HTTP; the server calls `submit`, `cancel` and `wait`, and streams the events
this engine publishes on the hot-state channel `run:{run_id}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from steward.app import Steward
from steward.durable.types import DurableEngine, JsonObject
from steward.errors import (
    ConfigError,
    Conflict,
    NotFound,
    RunCancelled,
    RunError,
    RunSignal,
    ToolError,
    UserError,
    WallTimeExceeded,
)
from steward.models.router import ModelRouter
from steward.observe.context import run_scope
from steward.observe.tracing import Tracing
from steward.runs.agent import Agent
from steward.runs.context import Context
from steward.store.hot import HEARTBEAT, Event, HotState
from steward.store.outage import retry_while_unreachable
from steward.store.runs import ACTIVE, RunStore, RunTotals, ThreadBusy
from steward.store.schema import Run, utcnow

log = logging.getLogger("steward.runs")

TERMINAL_EVENT = "end"


def run_channel(run_id: str) -> str:
    return f"run:{run_id}"


@dataclass(frozen=True)
class RunRequest:
    tenant_id: str
    agent: str
    input: Any
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    user_id: str | None = None
    multitask_strategy: str = "reject"


@dataclass(frozen=True)
class Outcome:
    status: str
    stop_reason: str
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class RunEngine:
    def __init__(
        self,
        app: Steward,
        *,
        store: RunStore,
        durable: DurableEngine,
        hot: HotState,
        tracing: Tracing,
        models: ModelRouter,
        execute: bool,
    ) -> None:
        self.app = app
        self.store = store
        self._durable = durable
        self.hot = hot
        self._tracing = tracing
        self._models = models
        self._execute_here = execute
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._cancelling: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def launch(self) -> None:
        self._durable.set_run_body(self._execute)
        await self._durable.launch(execute=self._execute_here)
        if self._execute_here:
            await self._restart_unstarted()

    async def shutdown(self) -> None:
        await self._durable.shutdown()
        await self._models.aclose()

    async def _restart_unstarted(self) -> None:
        """Start accepted runs that never reached the durable engine (a crash in between)."""
        # Only a pending run can be unstarted: `running` is written by the workflow itself.
        pending = {r.id: r for r in await asyncio.to_thread(self.store.pending_runs)}
        unstarted = [run_id for run_id, run in pending.items() if run.status == "pending"]
        for run_id in await self._durable.missing(unstarted):
            log.warning("starting run %s accepted before a crash", run_id)
            await self._durable.start(run_id, _payload(pending[run_id]))

    # -- API for entry points -----------------------------------------------------------------

    def agent(self, name: str) -> Agent:
        agent = self.app.agents.get(name)
        if agent is None:
            raise NotFound("assistant", name)
        return agent

    async def submit(self, request: RunRequest) -> Run:
        """Validate and accept a run; it is durable once this returns."""
        agent = self.agent(request.agent)
        validated = agent.parse_input(request.input).model_dump(mode="json")
        thread_id = request.thread_id
        if thread_id is None:
            thread_id = str(uuid.uuid4())  # stateless runs get a thread of their own
            await asyncio.to_thread(
                self.store.create_thread, request.tenant_id, thread_id, {"temporary": True}
            )
        run = Run(
            id=str(uuid.uuid4()),
            tenant_id=request.tenant_id,
            thread_id=thread_id,
            agent=agent.name,
            status="pending",
            input=validated,
            meta=request.metadata or {},
            user_id=request.user_id,
            multitask_strategy=request.multitask_strategy,
        )
        try:
            await asyncio.to_thread(self.store.create_run, run)
        except ThreadBusy as exc:
            active = await asyncio.to_thread(
                self.store.active_run_on_thread, request.tenant_id, thread_id
            )
            detail = f"thread {thread_id!r} has run {active.id if active else '?'!r} active"
            raise Conflict("thread-busy", detail) from exc
        if self._execute_here:
            await self._durable.start(run.id, _payload(run))
        else:
            await self._durable.enqueue(run.id, _payload(run))
        return run

    async def get(self, tenant_id: str, run_id: str, thread_id: str | None = None) -> Run:
        run = await asyncio.to_thread(self.store.get_run, tenant_id, run_id, thread_id)
        if run is None:
            raise NotFound("run", run_id)
        return run

    async def cancel(self, tenant_id: str, run_id: str, thread_id: str | None = None) -> Run:
        run = await self.get(tenant_id, run_id, thread_id)
        if run.status not in ACTIVE:
            return run
        task = self._tasks.get(run_id)
        if task is not None:
            self._cancelling.add(run_id)
            task.cancel()
        else:
            await self._durable.cancel(run_id)
        if await asyncio.to_thread(self.store.mark_cancelled, tenant_id, run_id):
            self.hot.publish_nowait(run_channel(run_id), {"event": TERMINAL_EVENT, "data": {}})
        return await self.get(tenant_id, run_id)

    async def wait(self, tenant_id: str, run_id: str) -> Run:
        """Return the run once it has ended, woken by its terminal event.

        The database is re-checked on every heartbeat, which covers a run finished by another
        process that shares no hot state with this one.
        """
        run = await self.get(tenant_id, run_id)
        if run.status not in ACTIVE:
            return run
        async for _, event in self.hot.read(run_channel(run_id), heartbeat_s=1.0):
            if event["event"] == TERMINAL_EVENT:
                return await self.get(tenant_id, run_id)
            if event is HEARTBEAT:
                run = await self.get(tenant_id, run_id)
            if run.status not in ACTIVE:
                return run
        return run  # pragma: no cover - read() never ends

    async def events(self, tenant_id: str, run_id: str) -> AsyncIterator[Event]:
        """The run's events from its start until it ends; the last is always `values` or `error`."""
        async for _, event in self.hot.read(run_channel(run_id), heartbeat_s=1.0):
            if event["event"] == TERMINAL_EVENT:
                return
            if event is HEARTBEAT:
                run = await self.get(tenant_id, run_id)
                if run.status not in ACTIVE:  # ended where this process could not hear it
                    if run.output is not None:
                        yield {"event": "values", "data": run.output}
                    else:
                        yield {"event": "error", "data": run.error or {"error": run.status}}
                    return
                continue
            yield event

    # -- the workflow body --------------------------------------------------------------------

    async def _execute(self, run_id: str, payload: JsonObject) -> JsonObject:
        run = await asyncio.to_thread(
            retry_while_unreachable, self.store.mark_running, run_id, utcnow()
        )
        if run is None or run.status not in ACTIVE:
            return {"status": run.status if run else "missing"}
        task = asyncio.current_task()
        if task is not None:
            self._tasks[run_id] = task
        try:
            with run_scope(run_id, run.tenant_id):
                outcome, totals = await self._run_agent(run, payload)
        finally:
            self._tasks.pop(run_id, None)
            self._cancelling.discard(run_id)
        await asyncio.to_thread(
            retry_while_unreachable,
            self.store.finish_run,
            run_id,
            status=outcome.status,
            stop_reason=outcome.stop_reason,
            output=outcome.output,
            error=outcome.error,
            totals=totals,
        )
        channel = run_channel(run_id)
        if outcome.output is not None:
            self.hot.publish_nowait(channel, {"event": "values", "data": outcome.output})
        elif outcome.error is not None:
            self.hot.publish_nowait(channel, {"event": "error", "data": outcome.error})
        self.hot.publish_nowait(channel, {"event": TERMINAL_EVENT, "data": {}})
        return {"status": outcome.status, "stop_reason": outcome.stop_reason}

    async def _run_agent(self, run: Run, payload: JsonObject) -> tuple[Outcome, RunTotals]:
        agent = self.app.agents.get(payload["agent"])
        if agent is None:
            error = {"error": "UnknownAgent", "message": f"agent {payload['agent']!r} is gone"}
            return Outcome("error", "agent_missing", error=error), RunTotals()
        started = run.started_at or utcnow()
        if started.tzinfo is None:  # SQLite hands back naive UTC datetimes
            started = started.replace(tzinfo=UTC)
        deadline = (started + timedelta(seconds=agent.limits.timeout_s)).timestamp()
        channel = run_channel(run.id)

        def emit(event: str, data: Any) -> None:
            self.hot.publish_nowait(channel, {"event": event, "data": data})

        ctx = Context(
            run_id=run.id,
            tenant_id=run.tenant_id,
            thread_id=run.thread_id,
            user_id=run.user_id,
            agent=agent,
            tools=self.app.tools_for(agent),
            journal=self._durable.step,
            resolve_model=self._models.resolve,
            tracing=self._tracing,
            emit=emit,
            deadline=deadline,
        )
        with self._tracing.invoke_agent(agent.name, conversation_id=run.thread_id) as span:
            outcome = await self._call_agent(agent, ctx, payload["input"], deadline)
            if outcome.status != "success":
                span.set_attribute("error.type", outcome.stop_reason)
            span.set_attribute("steward.run.status", outcome.status)
        return outcome, ctx.totals

    async def _call_agent(
        self, agent: Agent, ctx: Context, raw_input: Any, deadline: float
    ) -> Outcome:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.time())) as scope:
                result = await agent.fn(ctx, agent.input_model.model_validate(raw_input))
            return Outcome("success", "completed", output=agent.dump_output(result))
        except TimeoutError:
            if not scope.expired():
                return _failure("agent_error", TimeoutError("the agent raised TimeoutError"))
            return _signal(WallTimeExceeded(f"run exceeded {agent.limits.timeout_s}s"))
        except RunSignal as signal:
            return _signal(signal)
        except asyncio.CancelledError:
            if ctx.run_id not in self._cancelling:
                raise  # shutting down: leave the run pending for recovery
            return _signal(RunCancelled("cancelled"))
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


def _payload(run: Run) -> JsonObject:
    return {"tenant_id": run.tenant_id, "agent": run.agent, "input": run.input}
