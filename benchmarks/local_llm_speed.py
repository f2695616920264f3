"""How fast the local-llm model (SmolLM2-135M through llama.cpp) runs on this machine.

Measures, after one warm-up: free-text generation speed (tokens per second over a 128-token
reply), and the time of one grammar-constrained tool-call reply to the support example's first
question, against the deterministic `local` stand-in answering the same request (the baseline).
The figures are on the last line: `python benchmarks/local_llm_speed.py`.
"""

from __future__ import annotations

import asyncio
import os
import time

from steward.cli.loader import load_app
from steward.models.local import LocalModel
from steward.models.local_llm import LocalLLM
from steward.models.types import Message, ModelRequest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM = (
    "You are a support agent. Look orders up before answering; open a ticket only when the "
    "customer reports a problem."
)


async def main() -> None:
    app = load_app(os.path.join(ROOT, "examples", "support.py"))
    tools = tuple(tool.definition() for tool in app.tools.values())
    question = (Message("system", SYSTEM), Message("user", "Where is my order 42?"))
    tool_request = ModelRequest("smollm2-135m", question, tools)
    text_request = ModelRequest(
        "smollm2-135m", (Message("user", "Write a long story about the sea."),), max_tokens=128
    )
    model = LocalLLM()
    try:
        await model.complete(ModelRequest("smollm2-135m", (Message("user", "Hi"),), max_tokens=4))
        started = time.perf_counter()
        text = await model.complete(text_request)
        text_s = time.perf_counter() - started
        started = time.perf_counter()
        call = await model.complete(tool_request)
        tool_s = time.perf_counter() - started
    finally:
        await model.aclose()
    started = time.perf_counter()
    await LocalModel().complete(tool_request)
    baseline_s = time.perf_counter() - started
    chosen = call.tool_calls[0].name if call.tool_calls else "none"
    print(
        f"output_tokens={text.usage.output_tokens} text_s={text_s:.2f} "
        f"tokens_per_s={text.usage.output_tokens / text_s:.1f} tool_call_s={tool_s:.2f} "
        f"tool={chosen} local_stand_in_s={baseline_s:.4f} load1={os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
