"""An app whose agent uses a hosted MCP server (`steward mcp deploy ... --name notes`)."""

from __future__ import annotations

from pydantic import BaseModel

from steward import Context, Steward

app = Steward()
app.add_mcp_server("notes", hosted="notes")


class Ask(BaseModel):
    message: str


class Told(BaseModel):
    answer: str
    tools: list[str]


@app.agent(name="notes_agent", tools=["notes"])
async def notes_agent(ctx: Context, input: Ask) -> Told:
    """Answers from the team's notes, kept by a hosted MCP server."""
    loop = await ctx.tool_loop(input.message)
    return Told(answer=loop.text, tools=[r["tool"] for r in loop.tool_results])
