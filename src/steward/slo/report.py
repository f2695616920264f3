"""Objectives against figures: one row per objective, met or not, for `steward slo report`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from steward.slo.config import AgentObjectives, SloConfig
from steward.slo.figures import Figures, compute_figures
from steward.store.database import Database


@dataclass(frozen=True)
class ObjectiveRow:
    agent: str
    objective: str
    target: float
    actual: float | None
    met: bool | None  # None: no runs to judge by


def objective_rows(objectives: AgentObjectives, figures: Figures) -> list[ObjectiveRow]:
    """`success_rate` must reach its target; every other figure must stay at or below it."""
    pairs: list[tuple[str, float | None, float | None, bool]] = [
        ("success_rate", objectives.success_rate, figures.success_rate, True),
        ("p95_latency_s", objectives.p95_latency_s, figures.p95_latency_s, False),
        ("ttft_p95_s", objectives.ttft_p95_s, figures.ttft_p95_s, False),
        ("cost_per_run_usd", objectives.cost_per_run_usd, figures.cost_per_run_usd, False),
        (
            "cost_per_user_day_usd",
            objectives.cost_per_user_day_usd,
            figures.max_cost_per_user_day_usd,
            False,
        ),
    ]
    rows = []
    for name, target, actual, at_least in pairs:
        if target is None:
            continue
        met = None if actual is None else (actual >= target if at_least else actual <= target)
        rows.append(ObjectiveRow(figures.agent, name, target, actual, met))
    return rows


def slo_report(db: Database, config: SloConfig, tenant_id: str, now: datetime) -> dict[str, Any]:
    agents = []
    for agent, objectives in sorted(config.agents.items()):
        figures = compute_figures(
            db, tenant_id, agent, window=timedelta(hours=objectives.window_hours), now=now
        )
        agents.append(
            {
                "agent": agent,
                "window_start": figures.window_start.isoformat(),
                "window_end": figures.window_end.isoformat(),
                "runs": figures.runs,
                "successes": figures.successes,
                "figures": {
                    k: v
                    for k, v in asdict(figures).items()
                    if k not in ("agent", "window_start", "window_end", "runs", "successes")
                },
                "objectives": [asdict(r) for r in objective_rows(objectives, figures)],
            }
        )
    return {"tenant": tenant_id, "generated_at": now.isoformat(), "agents": agents}
