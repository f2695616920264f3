"""Per-run cost of tracing: a 3-step run with tracing off, on (spans into the local trace store),
and on with OTLP/HTTP export to a local receiver that decodes the protobuf.

Each mode builds its own `Runtime` on embedded SQLite in this process and runs the same agent
(three journaled tool steps); modes take turns round by round so drift hits them alike. The
"off" mode builds the runtime with `Tracing.disabled()` (no-op spans). Last line: key=value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import steward.runtime as runtime_module
from steward import Context, Steward
from steward.config import Settings
from steward.observe.otlp_receiver import OTLPReceiver
from steward.observe.tracing import Tracing
from steward.runs.engine import RunRequest
from steward.runtime import Runtime

app = Steward()
MODES = ("off", "store", "otlp")


class Steps(BaseModel):
    steps: int


class Done(BaseModel):
    total: int


@app.tool()
def add_one(value: int) -> int:
    """Return value + 1."""
    return value + 1


@app.agent(name="counter", max_steps=100, timeout_s=600)
async def counter(ctx: Context, input: Steps) -> Done:
    value = 0
    for _ in range(input.steps):
        value = await ctx.tool("add_one", {"value": value})
    return Done(total=value)


@contextmanager
def tracing_off() -> Iterator[None]:
    """Build a runtime whose tracer is the no-op one."""

    def disabled(*args: Any, **kwargs: Any) -> Tracing:
        return Tracing.disabled()

    original = runtime_module.Tracing
    runtime_module.Tracing = disabled  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        runtime_module.Tracing = original  # type: ignore[misc]


def build(mode: str, home: Path, endpoint: str) -> Runtime:
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    settings = Settings(home=home, model="local", apps=[])
    if mode == "off":
        with tracing_off():
            return Runtime.build(settings, app, execute=True)
    if mode == "otlp":
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    try:
        return Runtime.build(settings, app, execute=True)
    finally:
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)


async def run_seconds(runtime: Runtime, steps: int) -> tuple[float, float]:
    """Wall time and the whole process's CPU time (every thread: the exporters' too)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent="counter", input={"steps": steps})
    )
    finished = await runtime.engine.wait("default", run.id)
    assert finished.status == "success" and finished.output == {"total": steps}, finished.error
    return time.perf_counter() - started, time.process_time() - cpu_started


async def measure(mode: str, runs: int, steps: int, endpoint: str) -> list[tuple[float, float]]:
    with tempfile.TemporaryDirectory() as home:
        runtime = build(mode, Path(home), endpoint)
        await runtime.start()
        try:
            for _ in range(3):  # warm-up: imports, first connections
                await run_seconds(runtime, steps)
            times = [await run_seconds(runtime, steps) for _ in range(runs)]
            assert runtime.tracing.force_flush(30_000)  # spans still queued are not left out
        finally:
            await runtime.stop()
    return times


async def main(rounds: int, runs: int, steps: int) -> None:
    samples: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    with OTLPReceiver() as receiver:
        for index in range(rounds):
            for mode in MODES:
                samples[mode].extend(await measure(mode, runs, steps, receiver.endpoint))
            print(f"round {index + 1}/{rounds}", file=sys.stderr, flush=True)
        exported = len(receiver.spans())
    # Every traced run sends its agent span and one span per tool step.
    assert exported >= rounds * (runs + 3) * (steps + 1), exported
    median = {m: statistics.median(t[0] for t in times) * 1000 for m, times in samples.items()}
    cpu = {m: statistics.mean(t[1] for t in times) * 1000 for m, times in samples.items()}
    for mode in MODES:
        print(
            f"{mode}: {median[mode]:.2f} ms wall (median), {cpu[mode]:.2f} ms CPU (mean) "
            f"per {steps}-step run, {rounds * runs} runs"
        )
    print(
        f"steps={steps} runs={rounds * runs} off_ms={median['off']:.2f} "
        f"store_ms={median['store']:.2f} otlp_ms={median['otlp']:.2f} "
        f"store_ratio={median['store'] / median['off']:.3f} "
        f"otlp_ratio={median['otlp'] / median['off']:.3f} "
        f"off_cpu_ms={cpu['off']:.2f} store_cpu_ms={cpu['store']:.2f} "
        f"otlp_cpu_ms={cpu['otlp']:.2f} store_cpu_ratio={cpu['store'] / cpu['off']:.3f} "
        f"otlp_cpu_ratio={cpu['otlp'] / cpu['off']:.3f} "
        f"spans_exported={exported}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6, help="turns taken by the modes")
    parser.add_argument("--runs", type=int, default=20, help="measured runs per mode per round")
    parser.add_argument("--steps", type=int, default=3, help="tool steps per run")
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.runs, options.steps))
