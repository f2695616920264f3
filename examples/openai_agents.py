"""Example: an OpenAI Agents SDK agent served by Steward, unchanged.

Its model calls go through Steward's gateway as journaled steps, its tool calls through the run's
policy as journaled steps; a crash resumes the run where it stopped. Needs
`pip install 'steward[openai-agents]'`. Run it with `steward dev examples/openai_agents.py`, then
`curl -H "x-api-key: $KEY" -H 'content-type: application/json' localhost:8000/runs/wait
 -d '{"assistant_id": "support_openai_agents", "input": {"message": "Where is my order 42?"}}'`.
"""

from __future__ import annotations

from agents import Agent, function_tool

from steward import Steward
from steward.adapters.openai_agents import serve_openai_agent

_ORDERS = {
    42: {"status": "shipped", "carrier": "DHL", "delivery_date": "2026-11-26"},
    7: {"status": "processing", "carrier": None, "delivery_date": None},
}


@function_tool
def lookup_order(order_id: int) -> dict[str, object]:
    """Look up an order's status, carrier and delivery date by its id."""
    order = _ORDERS.get(order_id)
    if order is None:
        return {"order_id": order_id, "found": False}
    return {"order_id": order_id, "found": True, **order}


support = Agent(
    name="support_openai_agents",
    instructions="You are a support agent. Look orders up before answering.",
    tools=[lookup_order],
)

app = Steward()
serve_openai_agent(app, support, max_steps=12, timeout_s=60, max_cost_usd=0.50)
