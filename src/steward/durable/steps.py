"""One execution of one run, as the step journal sees it: step numbers, replay, the fence.

Steps are numbered in the order the run calls them (deterministic, like any durable workflow);
the first step of an execution reads everything the run recorded before, in one `SELECT`, and
later steps replay from that memory until the run reaches a step it has not recorded yet.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from steward.durable.journal import StepJournal
from steward.durable.types import JsonObject, StepFence, StepFenced
from steward.errors import RunCancelled, UserError


class RunSteps:
    """The journal state of the run executing in this task (and the tasks it spawns)."""

    def __init__(self, journal: StepJournal, run_id: str, owner: str) -> None:
        self.journal = journal
        self.run_id = run_id
        self.owner = owner  # the execution's ownership token (DBOS's `owner_xid`)
        self._next = 0
        self._recorded: dict[int, str] | None = None
        self._loading: asyncio.Future[dict[int, str]] | None = None

    def next_seq(self) -> int:
        """Taken when the step is called, before any await: the order is the call order."""
        self._next += 1
        return self._next

    async def replayed(self, seq: int) -> tuple[bool, Any]:
        """(True, result) when the step is recorded; loads the run's journal on first use."""
        recorded = self._recorded
        if recorded is None:
            recorded = await self._load()
        text = recorded.pop(seq, None)
        if text is None:
            return False, None
        return True, json.loads(text)

    async def _load(self) -> dict[int, str]:
        if self._loading is None:  # steps started side by side share the one read
            self._loading = asyncio.ensure_future(self.journal.recorded(self.run_id))
        recorded = await asyncio.shield(self._loading)
        self._recorded = recorded
        return recorded


CURRENT: contextvars.ContextVar[RunSteps | None] = contextvars.ContextVar(
    "steward_run_steps", default=None
)


async def run_step(
    name: str, fn: Callable[[], Awaitable[JsonObject]], fence: StepFence | None
) -> JsonObject:
    """Return the step's recorded result, or run it and record it before returning it."""
    steps = CURRENT.get()
    if steps is None:
        raise UserError(f"step {name!r} called outside a run")
    seq = steps.next_seq()
    done, result = await steps.replayed(seq)
    if done:
        replayed: JsonObject = result
        return replayed
    # The fence: a worker starts a step's effect only while its lease holds. A sweeper hands a
    # worker's runs over only after it has been silent for the stale time, twice the lease, so
    # an execution whose run could have moved stops here, before the effect; the journal's
    # ownership check refuses a late result when it is recorded.
    if fence is not None:
        await fence.enter_step()
    try:
        output = await fn()
    finally:
        if fence is not None:
            fence.exit_step()
    answer = await steps.journal.record(steps.run_id, seq, name, encode(output), steps.owner)
    if answer.verdict == "cancelled":
        raise RunCancelled(f"run {steps.run_id} was cancelled")
    if answer.verdict == "fenced":
        raise StepFenced(f"run {steps.run_id} is no longer owned by this execution")
    if answer.output is not None:  # recorded by this execution's earlier, retried commit
        again: JsonObject = json.loads(answer.output)
        return again
    return output


def encode(value: Any) -> str:
    """Compact JSON, ASCII-only (a lone surrogate is escaped, never an encoding error)."""
    return json.dumps(value, separators=(",", ":"), default=_portable)


def _portable(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"a step result of type {type(value).__name__} is not JSON")
