"""Framework agents for the adapter tests: each calls a slow, ledger-writing tool, so a test can
kill the server while a framework tool call is in flight and count what ran twice."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from agents import Agent as SdkAgent
from agents import RunConfig, Runner, function_tool
from pydantic_ai import Agent as PydanticAgent

from steward import Context, Steward
from steward.adapters._bridge import AgentInput
from steward.adapters.openai_agents import StewardModelProvider, serve_openai_agent
from steward.adapters.pydantic_ai import serve_pydantic_agent

app = Steward()


def _record(tool: str, index: int) -> None:
    path = Path(os.environ.get("STEWARD_TEST_LEDGER", ".steward/ledger.jsonl"))
    line = {"tool": tool, "index": index, "pid": os.getpid(), "t": time.time()}
    with path.open("a") as file:
        file.write(json.dumps(line) + "\n")


@function_tool
async def sdk_slow_step(index: int, sleep_s: float) -> int:
    """Record step `index` in the ledger, then sleep `sleep_s` seconds."""
    _record("sdk_slow_step", index)
    await asyncio.sleep(sleep_s)
    return index


serve_openai_agent(
    app,
    SdkAgent(name="sdk_steps", instructions="Run the steps asked for.", tools=[sdk_slow_step]),
    max_steps=20,
    timeout_s=120,
)

pydantic_steps = PydanticAgent(name="pydantic_steps", instructions="Run the steps asked for.")


@pydantic_steps.tool_plain
async def pydantic_slow_step(index: int, sleep_s: float) -> int:
    """Record step `index` in the ledger, then sleep `sleep_s` seconds."""
    _record("pydantic_slow_step", index)
    await asyncio.sleep(sleep_s)
    return index


serve_pydantic_agent(app, pydantic_steps, max_steps=20, timeout_s=120)


@function_tool
async def sdk_write_step(index: int) -> int:
    """Record step `index` in the ledger (declared as a write)."""
    _record("sdk_write_step", index)
    return index


serve_openai_agent(
    app,
    SdkAgent(name="sdk_writer", instructions="Write the steps.", tools=[sdk_write_step]),
    writes=["sdk_write_step"],
)

pydantic_writer = PydanticAgent(name="pydantic_writer", instructions="Write the steps.")


@pydantic_writer.tool_plain
async def pydantic_write_step(index: int) -> int:
    """Record step `index` in the ledger (declared as a write)."""
    _record("pydantic_write_step", index)
    return index


serve_pydantic_agent(app, pydantic_writer, writes=["pydantic_write_step"])


@app.agent(name="sdk_streamed")
async def sdk_streamed(ctx: Context, input: AgentInput) -> str:
    """Runs an SDK agent with `Runner.run_streamed` on Steward's model provider."""
    result = Runner.run_streamed(
        SdkAgent(name="streamed", instructions="Be brief."),
        input.message,
        run_config=RunConfig(model_provider=StewardModelProvider(ctx), tracing_disabled=True),
    )
    kinds = sorted({event.type async for event in result.stream_events()})
    return json.dumps({"output": result.final_output, "events": kinds})


@function_tool
def sdk_transfer(amount: int) -> dict[str, int]:
    """Transfer `amount` (needs a person's approval)."""
    _record("sdk_transfer", amount)
    return {"sent": amount}


serve_openai_agent(
    app,
    SdkAgent(name="sdk_payer", instructions="Pay what is asked.", tools=[sdk_transfer]),
    writes=["sdk_transfer"],
    needs_approval=["sdk_transfer"],
)

pydantic_payer = PydanticAgent(name="pydantic_payer", instructions="Pay what is asked.")


@pydantic_payer.tool_plain
def pydantic_transfer(amount: int) -> dict[str, int]:
    """Transfer `amount` (needs a person's approval)."""
    _record("pydantic_transfer", amount)
    return {"sent": amount}


serve_pydantic_agent(
    app, pydantic_payer, writes=["pydantic_transfer"], needs_approval=["pydantic_transfer"]
)
