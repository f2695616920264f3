"""Reading a run's journal back (its steps and their recorded outputs), for tools that turn
recorded runs into something else, e.g. `steward eval capture`. Read-only; no DBOS launch."""

from __future__ import annotations

import asyncio
from typing import Any

from dbos import DBOSClient, DBOSPortableJSONSerializer


def _read(database_url: str, run_id: str) -> list[dict[str, Any]]:
    client = DBOSClient(
        system_database_url=database_url,
        serializer=DBOSPortableJSONSerializer(),
        retry_connection_errors=False,
    )
    try:
        steps = client.list_workflow_steps(run_id)
    finally:
        client.destroy()
    ordered = sorted(steps, key=lambda s: s["function_id"])
    return [
        {"step": s["function_id"], "name": s["function_name"], "output": s["output"]}
        for s in ordered
    ]


async def read_journal(database_url: str, run_id: str) -> list[dict[str, Any]]:
    """The run's recorded steps in order: `step`, `name` ("model …", "tool …"), `output`."""
    return await asyncio.to_thread(_read, database_url, run_id)
