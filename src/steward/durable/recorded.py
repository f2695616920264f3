"""A recorded run's journal read back (its steps and their outputs), for tools that turn recorded
runs into something else, e.g. `steward eval capture`. Read-only; no engine needed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from steward.durable.journal import StepJournal


async def read_journal(database_url: str, run_id: str) -> list[dict[str, Any]]:
    """The run's recorded steps in order: `step`, `name` ("model …", "tool …"), `output`."""
    steps = await asyncio.to_thread(StepJournal(database_url).read_steps, run_id)
    return [
        {"step": seq, "name": name, "output": json.loads(output)} for seq, name, output in steps
    ]
