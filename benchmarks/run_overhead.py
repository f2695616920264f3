"""Per-step cost of Steward's run engine (journal + spans + caps) against the same loop run bare.

Both sides run the same agent function in this process on the embedded SQLite store: the engine
side through `RunEngine` (durable steps, spans exported to the trace store, cap checks), the bare
side with a context whose `tool` calls the function directly. Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from steward import Context, Steward, ToolContext
from steward.config import Settings
from steward.runs.engine import RunRequest
from steward.runtime import Runtime

app = Steward()


class Steps(BaseModel):
    steps: int


class Done(BaseModel):
    total: int


@app.tool()
def add_one(value: int) -> int:
    """Return value + 1."""
    return value + 1


@app.agent(name="counter", max_steps=10_000, timeout_s=3600)
async def counter(ctx: Context, input: Steps) -> Done:
    value = 0
    for _ in range(input.steps):
        value = await ctx.tool("add_one", {"value": value})
    return Done(total=value)


class BareContext:
    """The agent's view of a context with nothing behind it: tools are plain calls."""

    async def tool(self, name: str, arguments: dict[str, Any]) -> Any:
        context = ToolContext(
            run_id="bare", tenant_id="bare", step=0, idempotency_key="k", call_id="c"
        )
        return await app.tools[name].invoke(arguments, context)


async def bare_seconds(steps: int) -> float:
    started = time.perf_counter()
    result = await counter(BareContext(), Steps(steps=steps))  # type: ignore[arg-type]
    assert result.total == steps
    return time.perf_counter() - started


async def engine_seconds(runtime: Runtime, steps: int, cpu: list[float] | None = None) -> float:
    started = time.perf_counter()
    cpu_started = time.process_time()
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="counter", input={"steps": steps})
    )
    finished = await runtime.engine.wait("default", run.id)
    assert finished.status == "success" and finished.output == {"total": steps}, finished.error
    if cpu is not None:  # the whole process's CPU: every thread the engine and DBOS use
        cpu.append(time.process_time() - cpu_started)
    return time.perf_counter() - started


async def main(runs: int, steps: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), database_url=database_url, model="local", apps=[])
        runtime = Runtime.build(settings, app, execute=True)
        await runtime.start()
        runtime.keys.create("bench")
        try:
            await engine_seconds(runtime, steps)  # warm-up: imports, first connections
            engine, bare, three, cpu = [], [], [], []
            for index in range(runs):
                engine.append(await engine_seconds(runtime, steps, cpu))
                bare.append(await bare_seconds(steps))
                three.append(await engine_seconds(runtime, 3))
                print(f"run {index + 1}/{runs}", file=sys.stderr, flush=True)
        finally:
            await runtime.stop()
    engine_ms = statistics.median(engine) * 1000 / steps
    cpu_ms = statistics.median(cpu) * 1000 / steps
    bare_ms = statistics.median(bare) * 1000 / steps
    print(
        f"engine: {engine_ms:.3f} ms/step, bare: {bare_ms:.4f} ms/step, "
        f"3-step run end to end: {statistics.median(three) * 1000:.1f} ms"
    )
    store = "postgresql" if database_url else "sqlite"
    print(
        f"store={store} steps={steps} runs={runs} engine_ms_per_step={engine_ms:.3f} "
        f"bare_ms_per_step={bare_ms:.4f} overhead_ms_per_step={engine_ms - bare_ms:.3f} "
        f"ratio={engine_ms / bare_ms:.1f} engine_cpu_ms_per_step={cpu_ms:.3f} "
        f"three_step_run_ms={statistics.median(three) * 1000:.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="measured runs per side")
    parser.add_argument("--steps", type=int, default=100, help="tool steps per run")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty PostgreSQL database (postgresql://…); default: embedded SQLite",
    )
    options = parser.parse_args()
    asyncio.run(main(options.runs, options.steps, options.database_url))
