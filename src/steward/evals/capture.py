"""Regression capture: a recorded run becomes an eval case that replays its recorded tool results
and expects the same tool calls, so a later version is checked against what production did.

Tool calls and their arguments come from the run's journaled model steps; their results from the
journaled tool steps that follow, paired in order by tool name. A tool called directly by agent
code (no model step asked for it) is captured with arguments unknown, matched by name alone.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from steward.errors import UserError
from steward.evals.cases import EvalCase, ExpectedTool, RecordedToolCall
from steward.store.schema import Run


def recorded_tool_calls(steps: list[dict[str, Any]]) -> list[RecordedToolCall]:
    asked: deque[dict[str, Any]] = deque()
    calls = []
    for step in steps:
        name, output = str(step["name"]), step["output"] or {}
        if name.startswith("model "):
            response = (output.get("ok") or {}).get("response") or {}
            asked.extend(response.get("tool_calls") or [])
        elif name.startswith("tool "):
            tool = name.removeprefix("tool ")
            request = next((c for c in asked if c.get("name") == tool), None)
            if request is not None:
                asked.remove(request)
            arguments = request.get("arguments") if request is not None else None
            if "error" in output:
                error = str((output["error"] or {}).get("message", "tool failed"))
                calls.append(RecordedToolCall(name=tool, arguments=arguments, error=error))
            else:
                result = (output.get("ok") or {}).get("result")
                calls.append(RecordedToolCall(name=tool, arguments=arguments, result=result))
    return calls


def case_from_run(run: Run, steps: list[dict[str, Any]], answer_field: str | None) -> EvalCase:
    if run.status != "success" or run.output is None:
        raise UserError(f"run {run.id} ended {run.status}: only successful runs become cases")
    calls = recorded_tool_calls(steps)
    answer = run.output.get(answer_field) if answer_field else None
    return EvalCase(
        id=f"run-{run.id}",
        input=run.input,
        expected_tools=[ExpectedTool(name=c.name, arguments=c.arguments) for c in calls],
        tool_match="strict",
        argument_match="exact",
        reference_answer=answer if isinstance(answer, str) else json.dumps(run.output),
        tags=["captured", run.agent],
        replay=calls,
        source_run_id=run.id,
    )


def append_cases(path: Path, cases: list[EvalCase]) -> list[str]:
    """Append cases whose id the file does not have yet; the ids written."""
    existing: set[str] = set()
    if path.exists():
        existing = {json.loads(line)["id"] for line in path.read_text().splitlines() if line}
    new = [c for c in cases if c.id not in existing]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        for case in new:
            file.write(case.model_dump_json(exclude_defaults=True) + "\n")
    return [c.id for c in new]
