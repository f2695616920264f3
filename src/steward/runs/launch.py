"""Start a run of an assistant: the one door the runs API and the cron scheduler both use.

A run names an assistant id (a stored assistant of the tenant) or a graph id (a served agent,
which is also its system assistant); either resolves to the agent that runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from steward.errors import NotFound
from steward.runs.engine import RunEngine, RunRequest
from steward.runs.run_config import RunSettings, merge_config, merge_context, record
from steward.store.assistants import AssistantStore
from steward.store.schema import Run


async def start_run(
    engine: RunEngine,
    assistants: AssistantStore,
    request: RunRequest,
    *,
    config: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> Run:
    """Accept `request` (whose `agent` is an assistant or graph id); durable once it returns.

    The run's `config` and `context` are merged over the assistant's (the run's values win) and
    recorded with the run, with the assistant it was started through."""
    settings = RunSettings(request.agent, merge_config({}, config), merge_context({}, context))
    if request.agent not in engine.app.agents:  # a graph id: no look-up on the common path
        assistant = await asyncio.to_thread(assistants.get, request.tenant_id, request.agent)
        if assistant is None:
            raise NotFound("assistant", request.agent)
        settings = RunSettings(
            assistant.assistant_id,
            merge_config(assistant.config, config),
            merge_context(assistant.context, context),
        )
        request = replace(request, agent=assistant.graph_id)
    request = replace(request, metadata=record(request.metadata, settings))
    if engine.versions is not None:  # which deployed version the run takes, if any
        request = await engine.versions.choose(request)
    return await engine.submit(request)
