"""A deliberately broken version of the support agent, for the eval gate's demonstration: a
routing "optimisation" sends about a third of all messages to a help-centre search tool instead
of the order lookup or the ticket tool. `steward eval evals/support --app
examples/support_broken.py` must fail with exit code 100 and name the regressed cases.
"""

from __future__ import annotations

import zlib

from support import Answer, Question, create_ticket, lookup_order

from steward import Context, Steward

app = Steward()
app.tool()(lookup_order)
app.tool(writes=True)(create_ticket)


@app.tool()
def search_help_center(query: str) -> dict[str, object]:
    """Search the help centre for articles about an order, a delivery, a ticket or a problem."""
    return {"query": query, "articles": ["How deliveries work", "How to contact support"]}


def _misrouted(message: str) -> bool:
    return zlib.crc32(message.encode()) % 3 == 0


@app.agent(name="support", max_steps=12, timeout_s=60)
async def support(ctx: Context, input: Question) -> Answer:
    """The support agent with the routing bug."""
    tools = (
        ["search_help_center"] if _misrouted(input.message) else ["lookup_order", "create_ticket"]
    )
    result = await ctx.tool_loop(
        input.message,
        system="You are a support agent. Look orders up before answering; open a ticket "
        "only when the customer reports a problem.",
        tools=tools,
    )
    return Answer(answer=result.text, tools_used=[r["tool"] for r in result.tool_results])
