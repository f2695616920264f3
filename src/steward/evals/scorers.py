"""Deterministic scorers: tool selection, argument match, final-answer checks, budgets, and
custom Python scorers named `module:function`.

Each returns a `Score` (0..1, passed or not, and why); a case passes when all its scores pass.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steward.errors import UserError
from steward.evals.cases import AnswerChecks, CaseBudget, EvalCase, ExpectedTool


@dataclass(frozen=True)
class ToolCallRecord:
    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    """What one evaluated run did."""

    run_id: str
    status: str
    output: dict[str, Any] | None
    answer: str
    tool_calls: list[ToolCallRecord]
    cost_usd: float
    latency_s: float
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Score:
    name: str
    value: float
    passed: bool
    explanation: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def score_tools(case: EvalCase, calls: list[ToolCallRecord]) -> Score:
    """Tool selection by `case.tool_match`, each matched call's arguments by argument match."""
    expected = case.expected_tools or []
    actual = [c.name for c in calls]
    wanted = [e.name for e in expected]
    mode = case.tool_match
    if mode == "strict":
        selected = actual == wanted
    elif mode == "unordered":
        selected = Counter(actual) == Counter(wanted)
    elif mode == "subset":  # every call made was expected (some may be missing)
        selected = not Counter(actual) - Counter(wanted)
    else:  # superset: every expected call was made (others may be extra)
        selected = not Counter(wanted) - Counter(actual)
    if not selected:
        return Score(
            "tool_selection",
            0.0,
            False,
            f"{mode}: expected {wanted}, called {actual}",
            {"expected": wanted, "actual": actual},
        )
    mismatches = _argument_mismatches(case, expected, calls)
    if mismatches:
        return Score("tool_selection", 0.5, False, "; ".join(mismatches), {"actual": actual})
    return Score("tool_selection", 1.0, True, f"{mode}: called {actual}")


def _argument_mismatches(
    case: EvalCase, expected: list[ExpectedTool], calls: list[ToolCallRecord]
) -> list[str]:
    """Pair expected calls with actual ones in order, by name, and compare their arguments."""
    remaining = list(calls)
    problems: list[str] = []
    for want in expected:
        call = next((c for c in remaining if c.name == want.name), None)
        if call is None or want.arguments is None or case.argument_match == "ignore":
            continue
        remaining.remove(call)
        problems.extend(_compare_arguments(case.argument_match, want, call))
    return problems


def _compare_arguments(mode: str, want: ExpectedTool, call: ToolCallRecord) -> list[str]:
    assert want.arguments is not None
    problems = []
    for name, value in want.arguments.items():
        how = want.argument_match.get(name, "exact")
        if how == "ignore":
            continue
        if name not in call.arguments:
            problems.append(f"{want.name}: argument {name!r} missing")
        elif how == "contains":
            if str(value).lower() not in str(call.arguments[name]).lower():
                problems.append(f"{want.name}: {name}={call.arguments[name]!r} lacks {value!r}")
        elif call.arguments[name] != value:
            problems.append(f"{want.name}: {name}={call.arguments[name]!r}, expected {value!r}")
    if mode == "exact":
        extra = sorted(set(call.arguments) - set(want.arguments))
        if extra:
            problems.append(f"{want.name}: unexpected arguments {extra}")
    return problems


def score_answer(checks: AnswerChecks, answer: str, output: dict[str, Any] | None) -> Score:
    """Contains / not-contains (case-insensitive), a regex search, and a JSON schema that the
    run's whole output must satisfy."""
    problems = []
    lowered = answer.lower()
    problems += [f"missing {s!r}" for s in checks.contains if s.lower() not in lowered]
    problems += [f"contains {s!r}" for s in checks.not_contains if s.lower() in lowered]
    if checks.regex is not None and re.search(checks.regex, answer) is None:
        problems.append(f"no match for /{checks.regex}/")
    if checks.json_schema is not None:
        problems += _schema_problems(checks.json_schema, output)
    total = len(checks.contains) + len(checks.not_contains) + (checks.regex is not None)
    total += checks.json_schema is not None
    value = 1.0 - len(problems) / total if total else 1.0
    return Score("answer", max(0.0, value), not problems, "; ".join(problems) or "all checks hold")


def _schema_problems(schema: dict[str, Any], output: dict[str, Any] | None) -> list[str]:
    import jsonschema  # on first use: only suites with schema checks need it

    validator = jsonschema.Draft202012Validator(schema)
    return [f"schema: {e.message}" for e in validator.iter_errors(output)][:5]


def score_budget(budget: CaseBudget, observed: Observed) -> Score:
    problems = []
    if budget.max_cost_usd is not None and observed.cost_usd > budget.max_cost_usd:
        problems.append(f"cost ${observed.cost_usd:.6f} > ${budget.max_cost_usd:.6f}")
    if budget.max_latency_s is not None and observed.latency_s > budget.max_latency_s:
        problems.append(f"latency {observed.latency_s:.3f}s > {budget.max_latency_s:.3f}s")
    return Score("budget", 0.0 if problems else 1.0, not problems, "; ".join(problems) or "within")


CustomScorer = Callable[[EvalCase, Observed], Any]


def load_custom_scorer(target: str) -> CustomScorer:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise UserError(f"custom scorer {target!r} must be written module:function")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load custom scorer {target!r}: {exc}") from exc
    if not callable(function):
        raise UserError(f"custom scorer {target!r} is not callable")
    return function  # type: ignore[no-any-return]


def run_custom_scorer(target: str, case: EvalCase, observed: Observed) -> Score:
    """A custom scorer returns a bool, a number in 0..1 (passes at >= 0.5) or a `Score`."""
    result = load_custom_scorer(target)(case, observed)
    if isinstance(result, Score):
        return result
    if isinstance(result, bool):
        return Score(target, float(result), result)
    if isinstance(result, int | float) and 0 <= result <= 1:
        return Score(target, float(result), result >= 0.5)
    raise UserError(f"custom scorer {target!r} returned {json.dumps(repr(result))}")


def deterministic_scores(case: EvalCase, observed: Observed) -> list[Score]:
    scores = []
    if observed.status != "success":
        reason = (observed.error or {}).get("message", observed.status)
        scores.append(Score("run", 0.0, False, f"run ended {observed.status}: {reason}"))
    if case.expected_tools is not None:
        scores.append(score_tools(case, observed.tool_calls))
    checks = case.answer
    if checks.contains or checks.not_contains or checks.regex or checks.json_schema:
        scores.append(score_answer(checks, observed.answer, observed.output))
    if case.budget.max_cost_usd is not None or case.budget.max_latency_s is not None:
        scores.append(score_budget(case.budget, observed))
    scores.extend(run_custom_scorer(target, case, observed) for target in case.scorers)
    return scores
