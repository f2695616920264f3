"""An agent that uses the long-term store (`ctx.store`), for the LangGraph Platform tests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from steward import Context, Steward

app = Steward()


class Note(BaseModel):
    user: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$")
    key: str = Field(min_length=1, max_length=100)
    text: str


class Remembered(BaseModel):
    stored: dict[str, Any] | None
    notes: list[str]
    scratch_after_delete: dict[str, Any] | None


@app.agent(name="memory")
async def memory(ctx: Context, input: Note) -> Remembered:
    """Stores a note for the user, reads it back, lists the user's notes, deletes a scratch item."""
    namespace = ("notes", input.user)
    await ctx.store.put(namespace, input.key, {"text": input.text})
    await ctx.store.put((*namespace, "scratch"), "tmp", {"text": "scratch"}, ttl=5)
    stored = await ctx.store.get(namespace, input.key)
    found = await ctx.store.search(namespace, filter={"text": {"$ne": "scratch"}}, limit=50)
    await ctx.store.delete((*namespace, "scratch"), "tmp")
    scratch = await ctx.store.get((*namespace, "scratch"), "tmp")
    return Remembered(
        stored=stored.value if stored else None,
        notes=sorted(item.key for item in found),
        scratch_after_delete=scratch.value if scratch else None,
    )
