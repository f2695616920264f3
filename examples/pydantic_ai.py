"""Example: a Pydantic AI agent served by Steward, unchanged. (Not named `pydantic_ai.py`: that
name would shadow the `pydantic_ai` package for the file and its neighbours.)

Its model calls go through Steward's gateway as journaled steps, its tool calls through the run's
policy as journaled steps; a crash resumes the run where it stopped. Needs
`pip install 'steward[pydantic-ai]'`. Run it with `steward dev examples/pydantic_ai.py`, then
`curl -H "x-api-key: $KEY" -H 'content-type: application/json' localhost:8000/runs/wait
 -d '{"assistant_id": "support_pydantic_ai", "input": {"message": "Where is my order 42?"}}'`.
"""

from __future__ import annotations

from pydantic_ai import Agent

from steward import Steward
from steward.adapters.pydantic_ai import serve_pydantic_agent

_ORDERS = {
    42: {"status": "shipped", "carrier": "DHL", "delivery_date": "2026-11-26"},
    7: {"status": "processing", "carrier": None, "delivery_date": None},
}

support = Agent(
    name="support_pydantic_ai",
    instructions="You are a support agent. Look orders up before answering.",
)


@support.tool_plain
def lookup_order(order_id: int) -> dict[str, object]:
    """Look up an order's status, carrier and delivery date by its id."""
    order = _ORDERS.get(order_id)
    if order is None:
        return {"order_id": order_id, "found": False}
    return {"order_id": order_id, "found": True, **order}


app = Steward()
serve_pydantic_agent(app, support, max_steps=12, timeout_s=60, max_cost_usd=0.50)
