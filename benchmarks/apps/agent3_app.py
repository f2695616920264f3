"""The 3-step agent `benchmarks/compare_langgraph.py` runs on Steward: model → tool → model.

The model is Steward's built-in local model (no network, no weights), so what is measured is the
runtime around the agent. `langgraph_agent3/` is the same agent as a LangGraph graph.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from steward import Context, Steward

app = Steward()

_ORDERS = {42: {"status": "shipped", "carrier": "DHL"}}


class Question(BaseModel):
    message: str = Field(min_length=1, max_length=4000)


class Answer(BaseModel):
    answer: str
    tools_used: list[str]


@app.tool()
def lookup_order(order_id: int) -> dict[str, object]:
    """Look up an order's status and carrier by its id."""
    return {"order_id": order_id, **_ORDERS.get(order_id, {"found": False})}


@app.agent(name="agent3", max_steps=6, timeout_s=60)
async def agent3(ctx: Context, input: Question) -> Answer:
    """Looks the order up, then answers: one model call, one tool call, one model call."""
    result = await ctx.tool_loop(input.message, system="Look orders up before answering.")
    return Answer(answer=result.text, tools_used=[r["tool"] for r in result.tool_results])
