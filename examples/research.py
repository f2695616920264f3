"""Example: a research agent that searches notes, reads the best ones and writes a sourced answer.

It shows explicit multi-step control: each `ctx.tool` and `ctx.model` call is its own journaled
step, so a crash mid-run resumes after the last finished step.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from steward import Context, Steward

app = Steward()

_NOTES = {
    1: (
        "Durable execution",
        "A durable workflow journals each step's result; after a crash "
        "it replays recorded steps and re-runs only the step in flight.",
    ),
    2: (
        "Idempotency keys",
        "Write operations carry an idempotency key derived from the run "
        "and step, so a replayed step cannot write twice.",
    ),
    3: (
        "Prompt caching",
        "Providers discount cached input tokens; Anthropic charges extra "
        "for cache writes, OpenAI does not.",
    ),
    4: (
        "Server-sent events",
        "SSE streams events over one HTTP response; each event has a "
        "type and a data line, and an id for resuming.",
    ),
}


class ResearchQuestion(BaseModel):
    question: str = Field(min_length=3, max_length=2000)
    max_sources: int = Field(default=2, ge=1, le=4)


class Report(BaseModel):
    answer: str
    sources: list[str]


@app.tool()
def search_notes(query: str) -> list[dict[str, object]]:
    """Search the research notes and return matching note ids with titles, best first."""
    words = {w.strip("?.,!").lower() for w in query.split() if len(w) > 3}
    scored = []
    for note_id, (title, text) in _NOTES.items():
        haystack = f"{title} {text}".lower()
        score = sum(haystack.count(word) for word in words)
        if score:
            scored.append({"note_id": note_id, "title": title, "score": score})
    return sorted(scored, key=lambda note: -int(str(note["score"])))


@app.tool()
def read_note(note_id: int) -> dict[str, str]:
    """Read one research note in full by its id."""
    title, text = _NOTES[note_id]
    return {"title": title, "text": text}


@app.agent(name="research", max_steps=10, timeout_s=120)
async def research(ctx: Context, input: ResearchQuestion) -> Report:
    """Searches notes, reads the best matches and answers with sources."""
    hits = await ctx.tool("search_notes", {"query": input.question})
    notes = [
        await ctx.tool("read_note", {"note_id": hit["note_id"]})
        for hit in hits[: input.max_sources]
    ]
    if not notes:
        return Report(answer="I found no notes about that.", sources=[])
    context = "\n\n".join(f"{note['title']}: {note['text']}" for note in notes)
    reply = await ctx.model(
        f"Question: {input.question}\n\nNotes:\n{context}\n\nAnswer from the notes.",
        tools=False,
    )
    return Report(answer=reply.content or json.dumps(notes), sources=[n["title"] for n in notes])
