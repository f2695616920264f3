"""A no-op 3-step agent for `benchmarks/queue_throughput.py`: the engine cost, nothing else."""

from __future__ import annotations

from pydantic import BaseModel

from steward import Context, Steward

app = Steward()


class Empty(BaseModel):
    pass


class Count(BaseModel):
    steps: int


@app.tool()
def noop(index: int) -> int:
    """Return the index unchanged."""
    return index


@app.agent(name="noop3", max_steps=10, timeout_s=600)
async def noop3(ctx: Context, input: Empty) -> Count:
    """Three journaled tool steps that do nothing."""
    for index in range(3):
        await ctx.tool("noop", {"index": index})
    return Count(steps=3)
