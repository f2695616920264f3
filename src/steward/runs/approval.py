"""Human approval inside a run: pause at a tool call, wait durably for a decision, go on.

Every transition is a journaled step (request, each check, resume) and the wait itself is a
durable receive, so a run paused for days survives any number of restarts and a replay takes
exactly the same path. The database row, not the wake-up message, is the decision of record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from steward import audit
from steward.durable.types import JsonObject
from steward.policy.redact import SECRET_KINDS, Redactor
from steward.runs.types import Journal
from steward.store.approvals import ApprovalRequest, ApprovalStore
from steward.store.schema import Approval

Receive = Callable[[str, float], Any]  # (topic, timeout_s) -> Awaitable[JsonObject | None]
Publish = Callable[[str, Any], Awaitable[int | str]]  # (event, data) -> the hot-state event id

# How often a paused run re-reads its approval row, in case a wake-up message was lost.
CHECK_INTERVAL_S = 30.0


def approval_topic(approval_id: str) -> str:
    return f"approval:{approval_id}"


@dataclass(frozen=True)
class Decision:
    approval_id: str
    status: str  # approved | rejected | expired
    arguments: dict[str, Any]
    comment: str | None
    waited_s: float

    @property
    def approved(self) -> bool:
        return self.status == "approved"


def approval_json(approval: Approval) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        if moment is None:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()

    return {
        "approval_id": approval.id,
        "run_id": approval.run_id,
        "thread_id": approval.thread_id,
        "step": approval.step,
        "tool": approval.tool,
        "call_id": approval.call_id,
        "arguments": approval.arguments,
        "reason": approval.reason,
        "status": approval.status,
        "decided_arguments": approval.decided_arguments,
        "comment": approval.comment,
        "decided_by": approval.decided_by,
        "created_at": iso(approval.created_at),
        "expires_at": iso(approval.expires_at),
        "decided_at": iso(approval.decided_at),
    }


# What a reviewer sees: secrets never leave, while personal data stays readable, since deciding
# a call (say, an email) means seeing whom it goes to. Run streams filter further (all kinds).
_REVIEWER_REDACTOR = Redactor(SECRET_KINDS)


def reviewer_json(approval: Approval) -> dict[str, Any]:
    """`approval_json` for the approvals API: secrets in arguments, reason and comment redacted."""
    data = approval_json(approval)
    for field in ("arguments", "decided_arguments", "reason", "comment"):
        if data[field] is not None:
            data[field] = _REVIEWER_REDACTOR.redact_json(data[field])
    return data


def interrupt_json(approval: Approval) -> dict[str, Any]:
    """The pending call in LangGraph's interrupt shape (`{"id", "value"}`), as reviewers see it."""
    return {"id": approval.id, "value": reviewer_json(approval)}


class ApprovalGate:
    """One per run; `review` blocks the run until its pending call is decided."""

    def __init__(
        self,
        *,
        store: ApprovalStore,
        journal: Journal,
        receive: Receive,
        publish: Publish,
        tenant_id: str,
        run_id: str,
        thread_id: str | None,
        timeout_s: float,
    ) -> None:
        self._store = store
        self._journal = journal
        self._receive = receive
        self._publish = publish
        self._tenant_id = tenant_id
        self._run_id = run_id
        self._thread_id = thread_id
        self._timeout_s = timeout_s

    async def review(
        self, *, step: int, tool: str, call_id: str, arguments: dict[str, Any], reason: str
    ) -> Decision:
        request = ApprovalRequest(
            tenant_id=self._tenant_id,
            run_id=self._run_id,
            thread_id=self._thread_id,
            step=step,
            tool=tool,
            call_id=call_id,
            arguments=arguments,
            reason=reason,
            timeout_s=self._timeout_s,
        )

        async def pause() -> JsonObject:
            # The row before the interrupt: a reviewer who acts the moment the interrupt is
            # streamed must find the approval it names.
            approval = await asyncio.to_thread(self._store.request, self._store.build(request))
            await self._publish("updates", {"__interrupt__": [interrupt_json(approval)]})
            # A resumed stream starts after this marker, so it does not repeat the past.
            marker = await self._publish("interrupt", {"approval_id": approval.id})
            await asyncio.to_thread(
                self._store.set_stream_after, approval.tenant_id, approval.id, str(marker)
            )
            audit.record_later(approval.tenant_id, "approval.requested", reviewer_json(approval))
            return {"approval_id": approval.id}

        await self._journal(f"approval {tool}", pause)
        state = await self._wait(request.id)

        async def resume() -> JsonObject:
            await asyncio.to_thread(self._store.resume_run, self._run_id)
            await self._publish("updates", {"approval": _REVIEWER_REDACTOR.redact_json(state)})
            if state["status"] == "expired":  # nobody decided: the trail says so
                audit.record_later(self._tenant_id, "approval.expired", {"approval_id": request.id})
            return {}

        await self._journal("approval resume", resume)
        decided = state.get("decided_arguments")
        return Decision(
            approval_id=request.id,
            status=state["status"],
            arguments=decided if isinstance(decided, dict) else arguments,
            comment=state.get("comment"),
            waited_s=float(state["waited_s"]),
        )

    async def _wait(self, approval_id: str) -> JsonObject:
        async def check() -> JsonObject:
            approval = await asyncio.to_thread(self._store.settle, self._tenant_id, approval_id)
            if approval is None:  # deleted with its thread: nobody is left to approve
                return {"status": "rejected", "comment": "the approval was deleted", "waited_s": 0}
            data = approval_json(approval)
            decided = approval.decided_at or approval.created_at
            data["waited_s"] = max(0.0, (decided - approval.created_at).total_seconds())
            return data

        while True:
            await self._receive(approval_topic(approval_id), min(CHECK_INTERVAL_S, self._timeout_s))
            state = await self._journal("approval check", check)
            if state["status"] != "pending":
                return state
