"""Eval scores onto the evaluated run's `invoke_agent` span, as `gen_ai.evaluation.result`
events (OTel GenAI conventions), so the trace API, CLI and dashboard show them with the run."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from steward.evals.scorers import Score
from steward.store.database import Database
from steward.store.schema import Span

EVALUATION_EVENT = "gen_ai.evaluation.result"


def evaluation_event(score: Score, suite: str, case_id: str) -> dict[str, Any]:
    return {
        "name": EVALUATION_EVENT,
        "time_ns": time.time_ns(),
        "attributes": {
            "gen_ai.evaluation.name": score.name,
            "gen_ai.evaluation.score.value": score.value,
            "gen_ai.evaluation.score.label": "pass" if score.passed else "fail",
            "gen_ai.evaluation.explanation": score.explanation[:1000],
            "steward.eval.suite": suite,
            "steward.eval.case": case_id,
        },
    }


def record_evaluations(
    db: Database, tenant_id: str, run_id: str, events: list[dict[str, Any]]
) -> bool:
    """Append `events` to the run's agent span; False if the span is not in the store."""
    query = select(Span).where(
        Span.tenant_id == tenant_id, Span.run_id == run_id, Span.name.startswith("invoke_agent ")
    )
    with db.session() as session:
        span = session.scalars(query.order_by(Span.start_ns).limit(1)).first()
        if span is None:
            return False
        # A new object, so the JSON column is seen as changed.
        span.events = {"events": [*span.events.get("events", []), *events]}
    return True
