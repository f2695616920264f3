"""The engine's view of deployed versions: the version a new run takes, and the code it runs.

A run's version is written into its metadata (`steward.agent_version`) when it is accepted, so it
is part of the durable run row: whichever worker executes or resumes the run loads that version's
code, and a deploy or promotion meanwhile changes only the runs that start after it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import partial
from typing import Any

from steward.app import Steward
from steward.errors import InvalidInput
from steward.rollout.loader import MODULE_PREFIX, CodeCache
from steward.rollout.versions import AgentVersion, UnknownAgentVersion, VersionStore
from steward.runs.agent import Agent
from steward.runs.engine import RunEngine, RunRequest
from steward.store.assistants import SYSTEM, AssistantRecord, AssistantStore
from steward.store.schema import Run

VERSION_KEY = "steward.agent_version"


def run_version(metadata: dict[str, Any] | None) -> int | None:
    value = (metadata or {}).get(VERSION_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DeployedVersions:
    """Implements `steward.runs.types.CodeVersions` over a `VersionStore`."""

    def __init__(self, app: Steward, store: VersionStore, cache: CodeCache | None = None) -> None:
        self.app = app
        self.store = store
        self.cache = cache or CodeCache()
        # (agent, version) -> its row without source: versions never change once stored.
        self._known: dict[tuple[str, int], AgentVersion] = {}

    async def choose(self, request: RunRequest) -> RunRequest:
        """The stable version, or the one the caller pinned in the run's metadata (which must
        be a deployed version of the agent); no stable version leaves the request as it is."""
        metadata = dict(request.metadata or {})
        if self._serves_a_version(request.agent):
            return request
        if VERSION_KEY in metadata:
            pinned = run_version(metadata)
            if pinned is None:
                raise _bad_version(f"{VERSION_KEY} must be an integer version")
            try:
                await self._version(request.agent, pinned)
            except UnknownAgentVersion as exc:
                raise _bad_version(str(exc)) from exc
            return request
        stable = await asyncio.to_thread(self.store.stable, request.agent)
        if stable is None:
            return request
        return replace(request, metadata={**metadata, VERSION_KEY: stable})

    def _serves_a_version(self, agent: str) -> bool:
        """A process started on a deployed version's own code (an eval of that version) runs
        that code rather than the stable version."""
        served = self.app.agents.get(agent)
        return served is not None and served.fn.__module__.startswith(MODULE_PREFIX)

    async def code_for(self, run: Run) -> tuple[Steward, Agent] | None:
        version = run_version(run.meta)
        if version is None:
            return None
        known = await self._version(run.agent, version)
        if known.code_hash not in self.cache:
            known = await asyncio.to_thread(self.store.get, run.agent, version, with_source=True)
        loaded = await asyncio.to_thread(self.cache.load, known)
        return loaded.app, loaded.agent

    async def _version(self, agent: str, version: int) -> AgentVersion:
        known = self._known.get((agent, version))
        if known is None:
            known = await asyncio.to_thread(self.store.get, agent, version)
            self._known[(agent, version)] = known
        return known


def _bad_version(message: str) -> InvalidInput:
    return InvalidInput(message, [{"loc": ["metadata", VERSION_KEY], "msg": message}])


def assistant_versions(store: VersionStore, agent: str) -> list[AssistantRecord]:
    """An agent's deployed versions as versions of its system assistant, newest first."""
    stable = store.stable(agent)
    return [
        AssistantRecord(
            assistant_id=agent,
            graph_id=agent,
            name=agent,
            description=version.manifest.get("description"),
            version=version.version,
            config={"configurable": {"model": version.manifest.get("model")}},
            metadata={
                **SYSTEM,
                "code_hash": version.code_hash,
                "tools": version.manifest.get("tools"),
                "limits": version.manifest.get("limits"),
                "stable": version.version == stable,
                "eval_passed": (version.evaluation or {}).get("passed"),
            },
            created_at=version.created_at,
            updated_at=version.created_at,
        )
        for version in store.list(agent)
    ]


def install(engine: RunEngine, assistants: AssistantStore) -> DeployedVersions:
    """Serve deployed versions through `engine`, and list them as the agents' assistant
    versions (the runtime calls this when it builds)."""
    store = VersionStore(engine.store.db)
    versions = DeployedVersions(engine.app, store)
    engine.versions = versions
    engine.executor.code_for = versions.code_for
    assistants.deployed = partial(assistant_versions, store)
    return versions
