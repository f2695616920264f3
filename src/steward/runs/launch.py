"""Start a run of an assistant: the one door the runs API and the cron scheduler both use.

A run names an assistant id (a stored assistant of the tenant) or a graph id (a served agent,
which is also its system assistant); either resolves to the agent that runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from steward.errors import NotFound
from steward.runs.engine import RunEngine, RunRequest
from steward.store.assistants import AssistantStore
from steward.store.schema import Run


async def start_run(engine: RunEngine, assistants: AssistantStore, request: RunRequest) -> Run:
    """Accept `request` (whose `agent` is an assistant or graph id); durable once it returns."""
    if request.agent not in engine.app.agents:  # a graph id: no look-up on the common path
        assistant = await asyncio.to_thread(assistants.get, request.tenant_id, request.agent)
        if assistant is None:
            raise NotFound("assistant", request.agent)
        request = replace(request, agent=assistant.graph_id)
    if engine.versions is not None:  # which deployed version the run takes, if any
        request = await engine.versions.choose(request)
    return await engine.submit(request)
