"""Example: a customer-support agent with a read-only order lookup and a ticket-creating write tool.

Run it with `steward dev` from the repository root, then
`curl -H "x-api-key: $KEY" -H 'content-type: application/json' localhost:8000/runs/wait
 -d '{"assistant_id": "support", "input": {"message": "Where is my order 42?"}}'`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

from steward import Context, Steward, ToolContext

app = Steward()

_ORDERS = {
    42: {"status": "shipped", "carrier": "DHL", "delivery_date": "2026-11-26"},
    7: {"status": "processing", "carrier": None, "delivery_date": None},
    1001: {"status": "delivered", "carrier": "UPS", "delivery_date": "2026-11-02"},
}


class Question(BaseModel):
    message: str = Field(min_length=1, max_length=4000)


class Answer(BaseModel):
    answer: str
    tools_used: list[str]


@app.tool()
def lookup_order(order_id: int) -> dict[str, object]:
    """Look up an order's status, carrier and delivery date by its id."""
    order = _ORDERS.get(order_id)
    if order is None:
        return {"order_id": order_id, "found": False}
    return {"order_id": order_id, "found": True, **order}


@app.tool(writes=True)
def create_ticket(subject: str, body: str, ctx: ToolContext) -> dict[str, object]:
    """Open a support ticket for a problem a customer reports."""
    # The idempotency key is the same when a crashed step is replayed, so the ticket is
    # written once however often the step runs.
    path = Path(os.environ.get("STEWARD_HOME", ".steward")) / "tickets.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text().splitlines() if path.exists() else []
    for line in existing:
        ticket = json.loads(line)
        if ticket["idempotency_key"] == ctx.idempotency_key:
            return {"ticket_id": ticket["ticket_id"], "created": False}
    ticket = {
        "ticket_id": f"T-{len(existing) + 1:05d}",
        "subject": subject,
        "body": body,
        "idempotency_key": ctx.idempotency_key,
    }
    with path.open("a") as file:
        file.write(json.dumps(ticket) + "\n")
    return {"ticket_id": ticket["ticket_id"], "created": True}


@app.agent(name="support", max_steps=12, timeout_s=60)
async def support(ctx: Context, input: Question) -> Answer:
    """Answers customers' questions about their orders and opens tickets for problems."""
    result = await ctx.tool_loop(
        input.message,
        system="You are a support agent. Look orders up before answering; open a ticket "
        "only when the customer reports a problem.",
    )
    return Answer(answer=result.text, tools_used=[r["tool"] for r in result.tool_results])
