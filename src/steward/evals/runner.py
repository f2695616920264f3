"""Runs a suite's cases as real runs of the real runtime (engine, durable journal, gateway,
traces, stored rows), concurrently, then scores them and writes the scores onto their spans."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from steward.app import Steward
from steward.config import Settings
from steward.errors import StewardError
from steward.evals.cases import EvalCase, Suite
from steward.evals.harness import ToolRecorder
from steward.evals.judge import AnchoredJudge, Verdict
from steward.evals.results import CaseResult, SuiteResult
from steward.evals.scorers import Observed, Score, deterministic_scores
from steward.evals.span_events import evaluation_event, record_evaluations
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.store.schema import Run

OnCase = Callable[[CaseResult], None]


async def run_suite(
    suite: Suite,
    app: Steward,
    settings: Settings,
    *,
    app_label: str,
    agent: str | None = None,
    use_judge: bool = True,
    on_case: OnCase | None = None,
) -> SuiteResult:
    """Evaluate every case of `suite` against `agent` (default: the suite's) of `app`."""
    agent_name = agent or suite.agent
    if agent_name not in app.agents:
        raise StewardError(f"app {app_label!r} has no agent {agent_name!r}")
    recorder = ToolRecorder()
    recorder.install(app)
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat()
    # An executor id of its own: the eval process recovers no run another process left behind.
    settings = settings.model_copy(update={"executor_id": f"eval-{uuid.uuid4().hex[:12]}"})
    runtime = Runtime.build(settings, app, execute=True)
    await runtime.start()
    try:
        judge = None
        if use_judge and suite.config.judge is not None:
            judge = AnchoredJudge(
                runtime.gateway,
                suite.config.judge,
                tenant_id=suite.config.tenant,
                budget_id=str(uuid.uuid4()),
            )
        evaluation = _Evaluation(suite, agent_name, runtime, recorder, judge, on_case)
        limit = asyncio.Semaphore(suite.config.concurrency)

        async def one(case: EvalCase) -> CaseResult:
            async with limit:
                return await evaluation.case(case)

        results = await asyncio.gather(*(one(case) for case in suite.cases))
        # Spans are exported in batches: flush before adding the scores to them.
        await asyncio.to_thread(runtime.tracing.force_flush)
        for result in results:
            if result.run_id is not None and result.scores:
                events = [evaluation_event(s, suite.name, result.case_id) for s in result.scores]
                await asyncio.to_thread(
                    record_evaluations, runtime.db, suite.config.tenant, result.run_id, events
                )
    finally:
        await runtime.stop()
    return SuiteResult(
        suite=suite.name,
        agent=agent_name,
        app=app_label,
        cases=list(results),
        started_at=started_at,
        duration_s=time.monotonic() - started,
        judge_cost_usd=evaluation.judge_cost_usd,
    )


class _Evaluation:
    def __init__(
        self,
        suite: Suite,
        agent: str,
        runtime: Runtime,
        recorder: ToolRecorder,
        judge: AnchoredJudge | None,
        on_case: OnCase | None,
    ) -> None:
        self.suite = suite
        self.agent = agent
        self.runtime = runtime
        self.recorder = recorder
        self.judge = judge
        self.on_case = on_case
        self.judge_cost_usd = 0.0

    async def case(self, case: EvalCase) -> CaseResult:
        try:
            result = await self._evaluate(case)
        except StewardError as exc:
            result = CaseResult(case.id, False, 0.0, [], tags=case.tags, error=str(exc))
        if self.on_case is not None:
            self.on_case(result)
        return result

    async def _evaluate(self, case: EvalCase) -> CaseResult:
        engine = self.runtime.engine
        tenant = self.suite.config.tenant
        async with self.recorder.submitting() as register:
            run = await engine.submit(
                RunRequest(
                    tenant_id=tenant,
                    agent=self.agent,
                    input=case.input,
                    metadata={"steward.eval.suite": self.suite.name, "steward.eval.case": case.id},
                )
            )
            register(run.id, case.replay)
        run = await engine.wait(tenant, run.id)
        observed = self._observe(run)
        scores = deterministic_scores(case, observed)
        if self.judge is not None and case.rubric is not None:
            verdict = await self.judge.grade(
                case.rubric, _question(case), case.reference_answer, observed.answer
            )
            self.judge_cost_usd += verdict.cost_usd
            scores.append(_judge_score(verdict, self.judge.config.scale))
        passed = bool(scores) and all(s.passed for s in scores)
        mean = sum(s.value for s in scores) / len(scores) if scores else 0.0
        return CaseResult(
            case_id=case.id,
            passed=passed,
            score=mean,
            scores=scores,
            run_id=run.id,
            status=run.status,
            answer=observed.answer,
            tool_calls=[asdict(c) for c in observed.tool_calls],
            cost_usd=observed.cost_usd,
            latency_s=observed.latency_s,
            tags=case.tags,
        )

    def _observe(self, run: Run) -> Observed:
        latency = 0.0
        if run.started_at is not None and run.ended_at is not None:
            latency = (run.ended_at - run.started_at).total_seconds()
        return Observed(
            run_id=run.id,
            status=run.status,
            output=run.output,
            answer=_answer(run.output, self.suite.config.answer_field),
            tool_calls=self.recorder.calls.get(run.id, []),
            cost_usd=run.cost_usd,
            latency_s=latency,
            error=run.error,
        )


def _answer(output: dict[str, Any] | None, field: str | None) -> str:
    if output is None:
        return ""
    if field is not None and isinstance(output.get(field), str):
        return str(output[field])
    return json.dumps(output, ensure_ascii=False, sort_keys=True)


def _question(case: EvalCase) -> str:
    values = list(case.input.values())
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return json.dumps(case.input, ensure_ascii=False, sort_keys=True)


def _judge_score(verdict: Verdict, scale: int) -> Score:
    value = (verdict.score - 1) / (scale - 1) if verdict.score is not None else 0.0
    return Score(
        "judge",
        value,
        verdict.passed,
        f"score {verdict.score}/{scale}, agreement {verdict.agreement:.2f}: {verdict.reason}",
        {"samples": verdict.samples, "agreement": verdict.agreement, "cost_usd": verdict.cost_usd},
    )
