"""An agent that uses all three layers of `ctx.memory`, for the memory tests."""

from __future__ import annotations

from pydantic import BaseModel

from steward import Context, Steward

app = Steward()


class Turn(BaseModel):
    fact: str | None = None
    question: str | None = None
    erase_me: bool = False


class Reply(BaseModel):
    recalled: list[str]
    visits: int
    profile: dict[str, str] | None
    erased: int


@app.agent(name="recaller")
async def recaller(ctx: Context, input: Turn) -> Reply:
    """Remembers a fact for the end user, recalls by a question, counts visits, erases on ask."""
    if input.erase_me:
        return Reply(recalled=[], visits=0, profile=None, erased=await ctx.memory.forget_user())
    visits = await ctx.memory.session.incr("visits", ttl_s=600)
    await ctx.memory.records.put(("profiles",), str(ctx.user_id), {"name": str(ctx.user_id)})
    if input.fact:
        await ctx.memory.remember(input.fact, {"source": "chat"}, ("facts", str(ctx.user_id)))
    found = await ctx.memory.recall(input.question, k=1) if input.question else []
    record = await ctx.memory.records.get(("profiles",), str(ctx.user_id))
    return Reply(
        recalled=[m.text for m in found],
        visits=visits,
        profile=record.value if record else None,
        erased=0,
    )
