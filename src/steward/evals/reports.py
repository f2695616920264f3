"""The three reports of a suite run: JSON (also a later run's baseline), JUnit XML (for CI) and a
self-contained HTML page."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from steward.evals.gate import GateDecision
from steward.evals.results import SuiteResult


def report_json(result: SuiteResult, decision: GateDecision) -> dict[str, Any]:
    data = result.to_json()
    data["gate"] = {
        "passed": decision.passed,
        "exit_code": decision.exit_code,
        "reasons": decision.reasons,
        "failed_cases": decision.failed_cases,
        "comparison": asdict(decision.comparison) if decision.comparison else None,
    }
    return data


def junit_xml(result: SuiteResult) -> str:
    suite = ET.Element(
        "testsuite",
        name=f"steward-eval.{result.suite}",
        tests=str(len(result.cases)),
        failures=str(sum(1 for c in result.cases if not c.passed and c.error is None)),
        errors=str(result.errors),
        time=f"{result.duration_s:.3f}",
        timestamp=result.started_at,
    )
    for case in result.cases:
        element = ET.SubElement(
            suite,
            "testcase",
            classname=f"{result.suite}.{result.agent}",
            name=case.case_id,
            time=f"{case.latency_s:.3f}",
        )
        if case.error is not None:
            ET.SubElement(element, "error", message=case.error[:500]).text = case.error
        elif not case.passed:
            text = "\n".join(case.failures())
            ET.SubElement(element, "failure", message=text.splitlines()[0][:500]).text = text
        if case.run_id:
            ET.SubElement(element, "system-out").text = f"run {case.run_id}\n{case.answer}"
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode")


def report_html(result: SuiteResult, decision: GateDecision) -> str:
    e = html.escape
    verdict = "PASS" if decision.passed else "FAIL"
    rows = []
    regressed = set(decision.comparison.regressed) if decision.comparison else set()
    for case in result.cases:
        mark = "pass" if case.passed else "fail"
        note = " (regressed)" if case.case_id in regressed else ""
        rows.append(
            f"<tr class='{mark}'><td>{e(case.case_id)}{note}</td><td>{mark}</td>"
            f"<td>{case.score:.2f}</td><td>{e(', '.join(c['name'] for c in case.tool_calls))}</td>"
            f"<td>{e(case.answer[:300])}</td><td>{e('; '.join(case.failures()))}</td>"
            f"<td>${case.cost_usd:.6f}</td><td>{case.latency_s:.3f}s</td>"
            f"<td><code>{e(case.run_id or '')}</code></td></tr>"
        )
    comparison = ""
    if decision.comparison is not None:
        c = decision.comparison
        comparison = (
            f"<p>Baseline {e(c.baseline)}: {c.paired_cases} paired cases, "
            f"{len(c.regressed)} regressed, {len(c.improved)} improved; McNemar exact "
            f"p(worse)={c.pass_fail.p_worse:.4f}; sign test on scores "
            f"p(worse)={c.scores.p_worse:.4f}; Wilcoxon signed-rank on scores "
            f"p(worse)={c.score_ranks.p_worse:.4f}.</p>"
        )
    reasons = "".join(f"<li>{e(r)}</li>" for r in decision.reasons)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Eval {e(result.suite)}: {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
tr.fail{{background:#fde8e8}}tr.pass{{background:#e8f8ec}}</style></head><body>
<h1>Eval {e(result.suite)} — agent {e(result.agent)}: {verdict}</h1>
<p>{result.passed}/{len(result.cases)} passed ({result.pass_rate:.1%}), {result.errors} errors,
app {e(result.app)}, {result.duration_s:.1f}s, judge ${result.judge_cost_usd:.6f}.</p>
<ul>{reasons}</ul>{comparison}
<table><tr><th>case</th><th>result</th><th>score</th><th>tools</th><th>answer</th>
<th>failures</th><th>cost</th><th>latency</th><th>run</th></tr>
{"".join(rows)}</table></body></html>
"""


def write_reports(result: SuiteResult, decision: GateDecision, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / f"{result.suite}.json",
        "junit": folder / f"{result.suite}.junit.xml",
        "html": folder / f"{result.suite}.html",
    }
    paths["json"].write_text(json.dumps(report_json(result, decision), indent=2, default=str))
    paths["junit"].write_text(junit_xml(result))
    paths["html"].write_text(report_html(result, decision))
    return paths
