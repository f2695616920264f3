"""Wraps an app's tools for an eval: every call is recorded per run, and in a replayed case the
recorded result is returned instead of running the tool (regression replay).

The wrapped tool still runs inside the real run engine: the call is a journaled step with its
span, its policy checks and its idempotency key; only the function underneath is swapped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from steward.app import Steward
from steward.errors import ToolError
from steward.evals.cases import RecordedToolCall
from steward.evals.scorers import ToolCallRecord
from steward.tools.registry import Tool, ToolContext

_CONTEXT = "_steward_eval_context"
_JSON = TypeAdapter(Any)


class ToolRecorder:
    """Install once per app; `register(run_id, replay)` right after each run is submitted."""

    def __init__(self) -> None:
        self.calls: dict[str, list[ToolCallRecord]] = {}
        self._replays: dict[str, list[RecordedToolCall] | None] = {}
        self._changed = asyncio.Condition()
        self._submitting = 0  # submissions whose run id is not registered yet

    def install(self, app: Steward) -> None:
        for name, tool in list(app.tools.items()):
            app.tools[name] = replace(tool, fn=self._wrap(tool), context_param=_CONTEXT)

    @contextlib.asynccontextmanager
    async def submitting(
        self,
    ) -> AsyncIterator[Callable[[str, list[RecordedToolCall] | None], None]]:
        """Around one submission: yields `register(run_id, replay)`, to call once the run id is
        known. Until then a tool call of an unknown run waits, since it may be this one's."""
        async with self._changed:
            self._submitting += 1

        def register(run_id: str, replay: list[RecordedToolCall] | None) -> None:
            self._replays[run_id] = list(replay) if replay is not None else None

        try:
            yield register
        finally:
            async with self._changed:
                self._submitting -= 1
                self._changed.notify_all()

    async def _known(self, run_id: str) -> bool:
        """Whether `run_id` is a run of this eval; a run it does not know (one the runtime
        recovered, say) is left alone once no submission is pending."""
        async with self._changed:
            await self._changed.wait_for(lambda: run_id in self._replays or not self._submitting)
            return run_id in self._replays

    def _wrap(self, tool: Tool) -> Any:
        recorder = self

        async def recorded(**kwargs: Any) -> Any:
            context: ToolContext = kwargs.pop(_CONTEXT)
            # A run starts as soon as it is submitted; its plan is registered a moment later.
            if not await recorder._known(context.run_id):
                return await tool.call(dict(kwargs), context)
            arguments = _JSON.dump_python(kwargs, mode="json")
            calls = recorder.calls.setdefault(context.run_id, [])
            replay = recorder._replays.get(context.run_id)
            if replay is not None:
                try:
                    recorded_call = _take(replay, tool.name, arguments)
                except ToolError as exc:
                    calls.append(ToolCallRecord(tool.name, arguments, None, str(exc)))
                    raise
                calls.append(
                    ToolCallRecord(tool.name, arguments, recorded_call.result, recorded_call.error)
                )
                if recorded_call.error is not None:
                    raise ToolError(recorded_call.error)
                return recorded_call.result
            try:
                result = await tool.call(dict(kwargs), context)
            except Exception as exc:
                calls.append(ToolCallRecord(tool.name, arguments, None, str(exc)))
                raise
            calls.append(ToolCallRecord(tool.name, arguments, result))
            return result

        recorded.__name__ = tool.fn.__name__
        return recorded


def _take(replay: list[RecordedToolCall], name: str, arguments: dict[str, Any]) -> RecordedToolCall:
    """The first unused recorded call with this name and these arguments."""
    for index, call in enumerate(replay):
        if call.name == name and call.arguments in (None, arguments):
            return replay.pop(index)
    raise ToolError(
        f"replay: the recorded run made no call {name}({arguments}); the agent diverged"
    )
