"""An eval suite on disk: `evals/<agent>/suite.toml` (optional) and `*.jsonl` cases, one a line.

Cases are data: the input, the tool calls expected, a reference answer, a rubric for the judge,
tags, and cost and latency budgets. Bad files fail with the file and line that is wrong.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steward.errors import UserError

ToolMatch = Literal["strict", "unordered", "subset", "superset"]
ArgumentMatch = Literal["exact", "subset", "ignore"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpectedTool(_Strict):
    name: str
    arguments: dict[str, Any] | None = None  # None: any arguments
    # Per-argument override of the case's argument match: "exact", "ignore", or
    # "contains" (the expected string occurs in the actual one, case-insensitively).
    argument_match: dict[str, Literal["exact", "ignore", "contains"]] = Field(default_factory=dict)


class AnswerChecks(_Strict):
    contains: list[str] = Field(default_factory=list)
    not_contains: list[str] = Field(default_factory=list)
    regex: str | None = None
    json_schema: dict[str, Any] | None = None


class CaseBudget(_Strict):
    max_cost_usd: float | None = Field(None, ge=0)
    max_latency_s: float | None = Field(None, gt=0)


class RecordedToolCall(_Strict):
    """A tool call of a recorded run: replayed with its recorded result, never executed."""

    name: str
    arguments: dict[str, Any] | None = None  # None: not recorded, matched by name alone
    result: Any = None
    error: str | None = None


class EvalCase(_Strict):
    id: str = Field(min_length=1, max_length=200)
    input: dict[str, Any]
    expected_tools: list[ExpectedTool] | None = None  # None: tool calls are not scored
    tool_match: ToolMatch = "strict"
    argument_match: ArgumentMatch = "exact"
    reference_answer: str | None = None
    answer: AnswerChecks = Field(default_factory=AnswerChecks)
    rubric: str | None = None
    tags: list[str] = Field(default_factory=list)
    budget: CaseBudget = Field(default_factory=CaseBudget)
    scorers: list[str] = Field(default_factory=list)  # "module:function" custom scorers
    replay: list[RecordedToolCall] | None = None  # recorded tool results (regression replay)
    source_run_id: str | None = None


class Anchor(_Strict):
    """A graded example the judge is shown: an answer and the score it deserves."""

    answer: str
    score: int
    why: str = ""


class JudgeConfig(_Strict):
    model: str
    samples: int = Field(3, ge=1, le=9)
    scale: int = Field(5, ge=2, le=10)  # scores run 1..scale
    pass_score: int = Field(4, ge=1)
    anchors: list[Anchor] = Field(default_factory=list)
    max_tokens: int = Field(300, ge=16)
    max_cost_usd: float = Field(1.0, gt=0)  # for the judge's calls of one suite run


class GateConfig(_Strict):
    min_pass_rate: float = Field(0.9, ge=0, le=1)
    max_regressions: int = Field(0, ge=0)
    alpha: float = Field(0.05, gt=0, lt=1)


class SuiteConfig(_Strict):
    agent: str | None = None  # default: the folder's name
    app: str | None = None  # default: `apps` of steward.toml
    answer_field: str | None = "answer"  # the output field the answer checks read
    concurrency: int = Field(4, ge=1, le=64)
    tenant: str = "default"
    gate: GateConfig = Field(default_factory=GateConfig)
    judge: JudgeConfig | None = None


class Suite(BaseModel):
    name: str
    path: Path
    config: SuiteConfig
    cases: list[EvalCase]

    @property
    def agent(self) -> str:
        return self.config.agent or self.name


def load_suite(path: Path) -> Suite:
    """Read a suite folder (or one `.jsonl` file); case ids must be unique across its files."""
    if not path.exists():
        raise UserError(f"eval suite {str(path)!r} does not exist")
    folder = path if path.is_dir() else path.parent
    files = sorted(folder.glob("*.jsonl")) if path.is_dir() else [path]
    config = _load_config(folder / "suite.toml")
    cases: list[EvalCase] = []
    seen: set[str] = set()
    for file in files:
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            case = _parse_case(file, number, line)
            if case.id in seen:
                raise UserError(f"{file}:{number}: case id {case.id!r} is used twice")
            seen.add(case.id)
            cases.append(case)
    if not cases:
        raise UserError(f"eval suite {str(path)!r} has no cases (*.jsonl, one JSON case a line)")
    return Suite(name=folder.name, path=folder, config=config, cases=cases)


def _load_config(file: Path) -> SuiteConfig:
    if not file.exists():
        return SuiteConfig()
    try:
        return SuiteConfig.model_validate(tomllib.loads(file.read_text()))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise UserError(f"{file}: {exc}") from exc


def _parse_case(file: Path, number: int, line: str) -> EvalCase:
    try:
        return EvalCase.model_validate(json.loads(line))
    except (ValueError, ValidationError) as exc:
        raise UserError(f"{file}:{number}: not a valid eval case: {exc}") from exc
