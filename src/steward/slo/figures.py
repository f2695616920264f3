"""SLO figures of one agent over a rolling window, from stored runs (and their `chat` spans for
time to first token). The same queries serve SQLite and PostgreSQL.

Definitions: a run counts once it has ended; `interrupted` (cancelled) runs are left out of the
success rate, every other end that is not `success` counts against it. Percentiles are
nearest-rank. Cost per end user per day is the highest spend of one user in one UTC day.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from steward.observe.genai import GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
from steward.store.database import Database
from steward.store.schema import Run, Span

EXCLUDED_STATUSES = ("interrupted",)


@dataclass(frozen=True)
class EndedRun:
    id: str
    status: str
    latency_s: float
    cost_usd: float
    user_id: str | None
    ended_at: datetime


@dataclass(frozen=True)
class Figures:
    agent: str
    window_start: datetime
    window_end: datetime
    runs: int
    successes: int
    success_rate: float | None
    p95_latency_s: float | None
    ttft_p95_s: float | None
    cost_per_run_usd: float | None
    max_cost_per_user_day_usd: float | None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q of all values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def ended_runs(
    db: Database, tenant_id: str, agent: str, start: datetime, end: datetime
) -> list[EndedRun]:
    """Runs of `agent` that ended in [start, end)."""
    query = select(
        Run.id, Run.status, Run.started_at, Run.ended_at, Run.cost_usd, Run.user_id
    ).where(
        Run.tenant_id == tenant_id,
        Run.agent == agent,
        Run.ended_at >= start,
        Run.ended_at < end,
        Run.status.not_in(EXCLUDED_STATUSES),
    )
    with db.session() as session:
        rows = session.execute(query).all()
    runs = []
    for run_id, status, started, ended_at, cost, user in rows:
        assert ended_at is not None  # the query keeps only ended runs
        ended = _aware(ended_at)
        latency = (ended - _aware(started)).total_seconds() if started is not None else 0.0
        runs.append(EndedRun(run_id, status, latency, cost, user, ended))
    return runs


def first_chunk_times(db: Database, tenant_id: str, run_ids: list[str]) -> list[float]:
    """Per run, the time to first chunk of its first model call that reported one."""
    firsts: dict[str, tuple[int, float]] = {}
    for chunk in [run_ids[i : i + 500] for i in range(0, len(run_ids), 500)]:
        query = select(Span.run_id, Span.start_ns, Span.attributes).where(
            Span.tenant_id == tenant_id, Span.run_id.in_(chunk), Span.name.startswith("chat ")
        )
        with db.session() as session:
            for run_id, start_ns, attributes in session.execute(query):
                ttft = (attributes or {}).get(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
                if ttft is None or run_id is None:
                    continue
                if run_id not in firsts or start_ns < firsts[run_id][0]:
                    firsts[run_id] = (start_ns, float(ttft))
    return [ttft for _, ttft in firsts.values()]


def compute_figures(
    db: Database, tenant_id: str, agent: str, *, window: timedelta, now: datetime
) -> Figures:
    start = now - window
    runs = ended_runs(db, tenant_id, agent, start, now)
    successes = sum(1 for r in runs if r.status == "success")
    per_user_day: dict[tuple[str, str], float] = defaultdict(float)
    for run in runs:
        if run.user_id is not None:
            per_user_day[(run.user_id, run.ended_at.date().isoformat())] += run.cost_usd
    ttfts = first_chunk_times(db, tenant_id, [r.id for r in runs])
    return Figures(
        agent=agent,
        window_start=start,
        window_end=now,
        runs=len(runs),
        successes=successes,
        success_rate=successes / len(runs) if runs else None,
        p95_latency_s=percentile([r.latency_s for r in runs], 0.95),
        ttft_p95_s=percentile(ttfts, 0.95),
        cost_per_run_usd=sum(r.cost_usd for r in runs) / len(runs) if runs else None,
        max_cost_per_user_day_usd=max(per_user_day.values()) if per_user_day else None,
    )


def error_ratio(runs: list[EndedRun], *, latency_target_s: float | None) -> tuple[int, int]:
    """(bad, total) events: failed runs, or with a latency target, runs slower than it."""
    if latency_target_s is None:
        return sum(1 for r in runs if r.status != "success"), len(runs)
    return sum(1 for r in runs if r.latency_s > latency_target_s), len(runs)
