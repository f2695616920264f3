"""Assistant endpoints: the served agents, their schemas and limits (`assistant_id` = name)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from steward.runs.agent import Agent
from steward.runs.engine import RunEngine
from steward.server.auth import Reader

router = APIRouter(tags=["assistants"])


def assistant_json(agent: Agent) -> dict[str, Any]:
    return {
        "assistant_id": agent.name,
        "graph_id": agent.name,
        "name": agent.name,
        "description": agent.description,
        "config": {},
        "metadata": {"limits": agent.limits.to_json()},
        "version": 1,
    }


@router.post("/assistants/search")
async def search_assistants(principal: Reader, request: Request) -> list[dict[str, Any]]:
    engine: RunEngine = request.app.state.engine
    return [assistant_json(agent) for agent in engine.app.agents.values()]


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    engine: RunEngine = request.app.state.engine
    return assistant_json(engine.agent(assistant_id))


@router.get("/assistants/{assistant_id}/schemas")
async def get_schemas(assistant_id: str, principal: Reader, request: Request) -> dict[str, Any]:
    engine: RunEngine = request.app.state.engine
    described = engine.agent(assistant_id).describe()
    return {
        "graph_id": assistant_id,
        "input_schema": described["input_schema"],
        "output_schema": described["output_schema"],
        "state_schema": described["output_schema"],
        "config_schema": {},
        "context_schema": {},
    }
