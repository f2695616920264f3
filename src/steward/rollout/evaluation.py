"""Evaluate a deployed version with an eval suite and record the gate's decision on it.

The suite runs against the version's stored code (loaded as any worker loads it), through the
same machinery as `steward eval`, so what passed is exactly what will serve traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from steward.config import Settings
from steward.evals.cases import load_suite
from steward.evals.gate import GateDecision, decide
from steward.evals.results import CaseResult, SuiteResult
from steward.evals.runner import run_suite
from steward.rollout.loader import CodeCache
from steward.rollout.versions import VersionStore


def evaluation_record(suite: str, result: SuiteResult, decision: GateDecision) -> dict[str, Any]:
    return {
        "passed": decision.passed,
        "exit_code": decision.exit_code,
        "suite": suite,
        "cases": len(result.cases),
        "pass_rate": result.pass_rate,
        "failed_cases": decision.failed_cases,
        "reasons": decision.reasons,
        "evaluated_at": datetime.now(UTC).isoformat(),
    }


async def evaluate_version(
    store: VersionStore,
    agent: str,
    version: int,
    suite_path: Path,
    settings: Settings,
    *,
    use_judge: bool = True,
    on_case: Callable[[CaseResult], None] | None = None,
) -> tuple[SuiteResult, GateDecision]:
    suite = load_suite(suite_path)
    stored = store.get(agent, version, with_source=True)
    loaded = CodeCache().load(stored)
    result = await run_suite(
        suite,
        loaded.app,
        settings,
        app_label=f"{agent} v{version} ({stored.code_hash[:12]})",
        agent=agent,
        use_judge=use_judge,
        on_case=on_case,
    )
    decision = decide(result, suite.config.gate)
    store.record_evaluation(agent, version, evaluation_record(str(suite_path), result, decision))
    return result, decision
