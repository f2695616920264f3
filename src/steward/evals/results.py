"""The outcome of one suite run, as written to (and read back from) its JSON report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steward.errors import UserError
from steward.evals.scorers import Score


@dataclass
class CaseResult:
    case_id: str
    passed: bool
    score: float  # mean of the case's scores, 0..1
    scores: list[Score]
    run_id: str | None = None
    status: str = "success"
    answer: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    tags: list[str] = field(default_factory=list)
    error: str | None = None  # the case could not be evaluated (not a failed check)

    def failures(self) -> list[str]:
        if self.error is not None:
            return [f"error: {self.error}"]
        return [f"{s.name}: {s.explanation}" for s in self.scores if not s.passed]


@dataclass
class SuiteResult:
    suite: str
    agent: str
    app: str
    cases: list[CaseResult]
    started_at: str
    duration_s: float
    judge_cost_usd: float = 0.0

    @property
    def passed(self) -> int:
        return sum(1 for c in self.cases if c.passed)

    @property
    def errors(self) -> int:
        return sum(1 for c in self.cases if c.error is not None)

    @property
    def pass_rate(self) -> float:
        return self.passed / len(self.cases) if self.cases else 0.0

    def by_id(self) -> dict[str, CaseResult]:
        return {c.case_id: c for c in self.cases}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = {
            "cases": len(self.cases),
            "passed": self.passed,
            "errors": self.errors,
            "pass_rate": self.pass_rate,
            "cost_usd": sum(c.cost_usd for c in self.cases),
        }
        return data


def load_result(path: Path) -> SuiteResult:
    """A previous run's JSON report, as a baseline."""
    try:
        data = json.loads(path.read_text())
        cases = [
            CaseResult(**{**c, "scores": [Score(**s) for s in c["scores"]]}) for c in data["cases"]
        ]
        return SuiteResult(
            suite=data["suite"],
            agent=data["agent"],
            app=data["app"],
            cases=cases,
            started_at=data["started_at"],
            duration_s=data["duration_s"],
            judge_cost_usd=data.get("judge_cost_usd", 0.0),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"baseline {str(path)!r} is not an eval report: {exc}") from exc
