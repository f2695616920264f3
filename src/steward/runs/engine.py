"""The run engine: accepts runs, executes each as one durable workflow, enforces caps, cancels.

It knows nothing of HTTP; the server calls `submit`, `cancel` and `wait`, and streams the events
this engine publishes on the hot-state channel `run:{run_id}`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from steward import audit
from steward.app import Steward
from steward.durable.types import DurableEngine, JsonObject
from steward.errors import Conflict, NotFound, ToolError, UserError
from steward.models.gateway import Gateway
from steward.models.router import ModelRouter
from steward.observe.tracing import Tracing
from steward.runs.agent import Agent
from steward.runs.approval import approval_topic, reviewer_json
from steward.runs.execution import (
    CAP_REASONS,
    INTERNAL_ERROR,
    TERMINAL_EVENT,
    Outcome,
    RunExecutor,
    run_channel,
)
from steward.sandbox.manager import SandboxManager
from steward.security.secrets import SecretStore
from steward.store.approvals import DECISIONS, ApprovalStore
from steward.store.hot import HEARTBEAT, Event, HotState, MemoryHotState
from steward.store.runs import AWAITING_APPROVAL, RunStore, ThreadBusy, is_open
from steward.store.schema import Approval, Run
from steward.store.threads import ThreadStore
from steward.tools.runner import ToolRunner, default_runner

log = logging.getLogger("steward.runs")

__all__ = [
    "CAP_REASONS",
    "INTERNAL_ERROR",
    "TERMINAL_EVENT",
    "Outcome",
    "RunEngine",
    "RunRequest",
    "run_channel",
]

PAUSE_EVENT = "interrupt"  # the run paused for approval: watchers re-read its status
STRATEGIES = ("reject", "enqueue", "interrupt", "rollback")
CANCEL_CHANNEL = "cancels"


@dataclass(frozen=True)
class RunRequest:
    tenant_id: str
    agent: str
    input: Any
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    user_id: str | None = None
    multitask_strategy: str = "reject"
    webhook: str | None = None


class CodeVersions(Protocol):
    """Deployed agent versions (`steward.rollout`): which version a new run takes, recorded in
    its metadata, and the code a run executes, loaded from that version's stored source."""

    async def choose(self, request: RunRequest) -> RunRequest: ...

    async def code_for(self, run: Run) -> tuple[Steward, Agent] | None:
        """None: the run executes the serving process's own code for its agent."""
        ...


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
        gateway: Gateway | None = None,
        sandboxes: SandboxManager | None = None,
        secrets: SecretStore | None = None,
        approvals: ApprovalStore | None = None,
        tool_runner: ToolRunner | None = None,
    ) -> None:
        self.app = app
        self.tool_runner = tool_runner or default_runner()
        self.secrets = secrets
        self.store = store
        self.approvals = approvals or ApprovalStore(store.db)
        self.threads = ThreadStore(store.db)
        self._durable = durable
        self.hot = hot
        self._models = models
        self._execute_here = execute
        self.executor = RunExecutor(
            app=app,
            store=store,
            approvals=self.approvals,
            durable=durable,
            hot=hot,
            tracing=tracing,
            tool_runner=self.tool_runner,
            promote_next=self._promote_next,
            gateway=gateway,
            sandboxes=sandboxes,
            secrets=secrets,
        )
        # Runs executing here (the executor's own table): a cancel interrupts their task.
        self._tasks = self.executor.tasks
        self._cancelling = self.executor.cancelling
        # Called with a run id when a run of this process that has a webhook ends (to wake
        # webhook delivery).
        self.finished_listeners = self.executor.finished_listeners
        self.versions: CodeVersions | None = None  # deployed versions (steward.rollout)
        self._cancel_listener: asyncio.Task[None] | None = None
        # How often a waiter re-reads the run. An API-only process whose hot state is its own
        # memory never hears the end of a run a worker executed: the database is all it has.
        self._recheck_s = 0.2 if not execute and isinstance(hot, MemoryHotState) else 1.0

    # -- lifecycle ----------------------------------------------------------------------------

    async def launch(self) -> None:
        self._durable.set_run_body(self.executor.execute)
        await self._durable.launch(execute=self._execute_here)
        if self._execute_here:
            await self._restart_unstarted()
            self._cancel_listener = asyncio.get_running_loop().create_task(self._hear_cancels())

    async def shutdown(self) -> None:
        if self._cancel_listener is not None:
            self._cancel_listener.cancel()
        await self._durable.shutdown()
        await self._models.aclose()

    async def _hear_cancels(self) -> None:
        """Cancel signals from API servers (hot state): interrupt the run if it runs here."""
        async for _, event in self.hot.read(CANCEL_CHANNEL):
            run_id = event.get("data", {}).get("run_id")
            task = self._tasks.get(run_id) if event.get("event") == "cancel" else None
            if task is not None:
                self._cancelling.add(run_id)
                task.cancel()

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
        """Validate and accept a run; it is durable once this returns.

        A second run on a busy thread follows `multitask_strategy`: `reject` answers 409,
        `enqueue` waits its turn, `interrupt` cancels the active run first and `rollback`
        also deletes it.
        """
        agent = self.agent(request.agent)
        if request.multitask_strategy not in STRATEGIES:
            raise UserError(f"unknown multitask_strategy {request.multitask_strategy!r}")
        validated = agent.parse_input(request.input).model_dump(mode="json")
        thread_id = request.thread_id
        # Stateless runs get a thread of their own, created with the run in one transaction.
        new_thread = {"temporary": True} if thread_id is None else None
        thread_id = thread_id or str(uuid.uuid4())
        strategy = request.multitask_strategy
        for _ in range(5):  # each retry follows a run that another request just started
            run = Run(
                id=str(uuid.uuid4()),
                tenant_id=request.tenant_id,
                thread_id=thread_id,
                agent=agent.name,
                status="pending",
                active=True,
                input=validated,
                meta=request.metadata or {},
                user_id=request.user_id,
                multitask_strategy=strategy,
                webhook=request.webhook,
            )
            try:
                await asyncio.to_thread(self.store.create_run, run, new_thread=new_thread)
            except ThreadBusy:
                active = await asyncio.to_thread(
                    self.store.active_run_on_thread, request.tenant_id, thread_id
                )
                if strategy == "enqueue":
                    return await self._enqueue_behind(run)
                if strategy == "reject" or active is None:
                    if active is None:
                        continue  # it ended between our insert and our look
                    detail = f"thread {thread_id!r} has run {active.id!r} active"
                    raise Conflict("thread-busy", detail) from None
                await self._stop(active, delete=strategy == "rollback")
                continue
            await self._dispatch(run)
            return run
        raise Conflict("thread-busy", f"thread {thread_id!r} kept getting new runs; retry")

    async def _enqueue_behind(self, run: Run) -> Run:
        run.active = False
        await asyncio.to_thread(self.store.create_run, run)
        await self._promote_next(run.tenant_id, run.thread_id)
        return await self.get(run.tenant_id, run.id)

    async def _dispatch(self, run: Run) -> None:
        if self._execute_here:
            await self._durable.start(run.id, _payload(run))
        else:
            await self._durable.enqueue(run.id, _payload(run))

    async def _promote_next(self, tenant_id: str, thread_id: str | None) -> None:
        """Start the next run queued on a thread that has just been freed."""
        if thread_id is None:
            return
        run = await asyncio.to_thread(self.store.promote_next, tenant_id, thread_id)
        if run is not None:
            await self._dispatch(run)

    async def _stop(self, run: Run, *, delete: bool) -> None:
        """Cancel an open run (multitask `interrupt`), and with `delete`, remove it (`rollback`)."""
        task = self._tasks.get(run.id)
        if task is not None:
            self._cancelling.add(run.id)
            task.cancel()
        else:
            await self._durable.cancel(run.id)
            # The durable core stops it at its next step; this stops it mid-step, wherever it runs.
            self.hot.publish_nowait(CANCEL_CHANNEL, {"event": "cancel", "data": {"run_id": run.id}})
        if await asyncio.to_thread(self.store.mark_cancelled, run.tenant_id, run.id):
            if run.stop_reason == AWAITING_APPROVAL:  # wake its durable wait to notice
                for approval in await asyncio.to_thread(
                    self.approvals.for_run, run.tenant_id, run.id, pending_only=True
                ):
                    await self._durable.send(run.id, approval_topic(approval.id), {})
            self.hot.publish_nowait(run_channel(run.id), {"event": TERMINAL_EVENT, "data": {}})
        if delete:
            await asyncio.to_thread(self.store.delete_run, run.tenant_id, run.id)

    async def get(self, tenant_id: str, run_id: str, thread_id: str | None = None) -> Run:
        run = await asyncio.to_thread(self.store.get_run, tenant_id, run_id, thread_id)
        if run is None:
            raise NotFound("run", run_id)
        return run

    async def cancel(
        self, tenant_id: str, run_id: str, thread_id: str | None = None, *, delete: bool = False
    ) -> Run:
        run = await self.get(tenant_id, run_id, thread_id)
        if not is_open(run):
            if delete:
                await asyncio.to_thread(self.store.delete_run, tenant_id, run_id)
            return run
        await self._stop(run, delete=delete)
        await self._promote_next(tenant_id, run.thread_id)
        if delete:
            return run
        return await self.get(tenant_id, run_id)

    async def delete_thread(self, tenant_id: str, thread_id: str) -> None:
        """Cancel the thread's unfinished runs, then delete it with its runs and approvals."""
        if await asyncio.to_thread(self.store.get_thread, tenant_id, thread_id) is None:
            raise NotFound("thread", thread_id)
        runs = await asyncio.to_thread(
            self.store.list_runs, tenant_id, thread_id=thread_id, limit=10_000
        )
        for run in runs:
            if is_open(run):
                await self._stop(run, delete=False)
        await asyncio.to_thread(self.threads.delete, tenant_id, thread_id)

    # -- approvals ----------------------------------------------------------------------------

    async def decide(
        self,
        tenant_id: str,
        approval_id: str,
        *,
        approve: bool,
        arguments: dict[str, Any] | None = None,
        comment: str | None = None,
        decided_by: str | None = None,
    ) -> Approval:
        """Approve (optionally with edited arguments) or reject a paused tool call."""
        approval = await asyncio.to_thread(self.approvals.get, tenant_id, approval_id)
        if approval is None:
            raise NotFound("approval", approval_id)
        if approval.status != "pending":
            raise Conflict("approval-decided", f"approval {approval_id!r} is {approval.status}")
        if arguments is not None:
            tool = self.app.tools.get(approval.tool)
            if tool is None:
                raise NotFound("tool", approval.tool)
            try:
                tool.validate(arguments)
            except ToolError as exc:
                raise UserError(str(exc)) from exc
        status = DECISIONS[0] if approve else DECISIONS[1]
        decided = await asyncio.to_thread(
            self.approvals.decide,
            tenant_id,
            approval_id,
            status=status,
            arguments=arguments if approve else None,
            comment=comment,
            decided_by=decided_by,
        )
        if decided is None:
            raise Conflict("approval-decided", f"approval {approval_id!r} was decided meanwhile")
        audit.record_later(tenant_id, "approval.decided", reviewer_json(decided))
        # Only a wake-up: the paused run re-reads the row, and re-checks it periodically anyway.
        await self._durable.send(decided.run_id, approval_topic(decided.id), {})
        return decided

    async def pending_approval_on_thread(self, tenant_id: str, thread_id: str) -> Approval:
        pending = await asyncio.to_thread(self.approvals.pending_on_thread, tenant_id, thread_id)
        if not pending:
            raise Conflict("nothing-to-resume", f"thread {thread_id!r} has no paused tool call")
        return pending[0]

    async def wait(self, tenant_id: str, run_id: str) -> Run:
        """Return the run once it has ended, woken by its terminal event.

        The database is re-checked on every heartbeat (`_recheck_s`), which covers a run
        finished by another process that shares no hot state with this one.
        """
        run = await self.get(tenant_id, run_id)
        if _settled(run):
            return run
        async for _, event in self.hot.read(run_channel(run_id), heartbeat_s=self._recheck_s):
            if event["event"] in (TERMINAL_EVENT, PAUSE_EVENT) or event is HEARTBEAT:
                run = await self.get(tenant_id, run_id)
                if _settled(run):
                    return run
        return run  # pragma: no cover - read() never ends

    async def events(
        self, tenant_id: str, run_id: str, *, after: int | str = 0
    ) -> AsyncIterator[tuple[int | str, Event]]:
        """The run's (id, event) pairs after `after` until it ends or pauses for approval.

        A finished run's stream ends with `values` or `error`; a paused one with an
        `updates` event carrying `__interrupt__`.
        """
        async for event_id, event in self.hot.read(
            run_channel(run_id), after=int(after), heartbeat_s=self._recheck_s
        ):
            if event["event"] == TERMINAL_EVENT:
                return
            if event["event"] == PAUSE_EVENT:
                approval = await asyncio.to_thread(
                    self.approvals.get, tenant_id, event["data"]["approval_id"]
                )
                if approval is not None and approval.status == "pending":
                    return
                continue
            if event is HEARTBEAT:
                run = await self.get(tenant_id, run_id)
                if run.stop_reason == AWAITING_APPROVAL and is_open(run):
                    return
                if not is_open(run):  # ended out of this process's hearing
                    if run.output is not None:
                        yield 0, {"event": "values", "data": run.output}
                    else:
                        yield 0, {"event": "error", "data": run.error or {"error": run.status}}
                    return
                continue
            yield event_id, event


def _settled(run: Run) -> bool:
    """Whether a waiter is done: the run ended, or it is paused waiting for a person."""
    return not is_open(run) or run.stop_reason == AWAITING_APPROVAL


def _payload(run: Run) -> JsonObject:
    return {"tenant_id": run.tenant_id, "agent": run.agent, "input": run.input}
