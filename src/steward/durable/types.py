"""The durable-execution contract the run engine relies on; DBOS implements it in `dbos_engine`.

One run is one durable workflow; every effect inside it is one journaled step whose JSON result
is returned, not re-executed, when the run is resumed after a crash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

JsonObject = dict[str, Any]
RunBody = Callable[[str, JsonObject], Awaitable[JsonObject]]
"""The workflow body: (run_id, payload) -> result. Registered once per process."""


class StepFenced(BaseException):
    """This execution no longer owns its run (another worker took it over): it must stop.

    A `BaseException`, so neither agent code nor the engine's error handling records it as
    the run's outcome; the durable core leaves the run to its owner.
    """


class StepFence(Protocol):
    """Admits a step only while this worker may run it (see `steward.durable.workers`)."""

    async def enter_step(self) -> None: ...

    def exit_step(self) -> None: ...


class DurableEngine(Protocol):
    def set_run_body(self, body: RunBody) -> None:
        """Install the function every run executes; call before `launch`."""

    async def launch(self, *, execute: bool) -> None:
        """Connect; with `execute`, also recover this executor's pending runs and take queued."""

    async def shutdown(self) -> None: ...

    async def start(self, run_id: str, payload: JsonObject) -> None:
        """Start the run in this process now. Starting an existing run id is a no-op."""

    async def enqueue(self, run_id: str, payload: JsonObject) -> None:
        """Queue the run for whichever worker takes it first."""

    async def step(self, name: str, fn: Callable[[], Awaitable[JsonObject]]) -> JsonObject:
        """Run `fn` as a journaled step, or return its recorded result on replay."""

    async def receive(self, topic: str, timeout_s: float) -> JsonObject | None:
        """Inside a run: wait durably for a message on `topic`; None when `timeout_s` passes.

        A received message (or the timeout) is journaled like a step, so a replay returns it.
        """

    async def send(self, run_id: str, topic: str, message: JsonObject) -> None:
        """Deliver `message` to the run waiting (or about to wait) on `topic`."""

    async def cancel(self, run_id: str) -> None:
        """Stop the run at its next step boundary; its in-flight step is abandoned."""

    async def missing(self, run_ids: list[str]) -> list[str]:
        """The run ids the engine has no record of, in one query."""

    async def exists(self, run_id: str) -> bool:
        """Whether the engine has a record of this run (started or queued)."""
