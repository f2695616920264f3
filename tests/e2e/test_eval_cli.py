"""`steward eval` as CI runs it: the support suite passes (exit 0); the broken variant, which
routes a third of the messages to the wrong tool, fails the gate (exit 100) naming exactly those
cases; the scores are on the evaluated runs' spans, served by GET /runs/{id}/trace."""

from __future__ import annotations

import json
import subprocess
import zlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx

from tests.conftest import ROOT, STEWARD, StewardProcess, make_process

SUITE = ROOT / "evals" / "support"


def _eval(process: StewardProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STEWARD, "eval", str(SUITE), *args],
        cwd=ROOT,
        env={**process.env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _cases() -> list[dict[str, object]]:
    return [json.loads(line) for line in (SUITE / "cases.jsonl").read_text().splitlines()]


def test_the_support_suite_gates_the_broken_version_and_passes_the_good_one(
    tmp_path: Path,
) -> None:
    process = make_process(tmp_path)
    cases = _cases()
    assert len(cases) >= 20

    good = _eval(process, "--out", str(tmp_path / "good"))
    assert good.returncode == 0, good.stderr
    report = json.loads((tmp_path / "good" / "support.json").read_text())
    assert report["summary"] == {
        "cases": len(cases),
        "passed": len(cases),
        "errors": 0,
        "pass_rate": 1.0,
        "cost_usd": 0.0,
    }
    junit = ET.parse(tmp_path / "good" / "support.junit.xml").getroot()
    assert junit.get("tests") == str(len(cases)) and junit.get("failures") == "0"
    assert "gate passed" in good.stderr

    broken = _eval(
        process,
        "--app",
        "examples/support_broken.py",
        "--baseline",
        str(tmp_path / "good" / "support.json"),
        "--out",
        str(tmp_path / "broken"),
    )
    assert broken.returncode == 100, broken.stderr
    # The broken version misroutes the messages whose CRC-32 is 0 mod 3: those, and only
    # those, must be reported as regressed.
    misrouted = {
        str(c["id"])
        for c in cases
        if zlib.crc32(str(c["input"]["message"]).encode()) % 3 == 0  # type: ignore[index]
    }
    assert len(misrouted) == len(cases) // 3
    listed = {
        line.split("regressed:")[1].strip()
        for line in broken.stderr.splitlines()
        if line.strip().startswith("regressed:")
    }
    assert listed == misrouted
    gate = json.loads((tmp_path / "broken" / "support.json").read_text())["gate"]
    assert gate["exit_code"] == 100
    assert sorted(gate["comparison"]["regressed"]) == sorted(misrouted)
    assert gate["comparison"]["pass_fail"]["worse"] == len(misrouted)
    assert gate["comparison"]["pass_fail"]["better"] == 0
    assert gate["comparison"]["pass_fail"]["p_worse"] == 0.5 ** len(misrouted)
    junit = ET.parse(tmp_path / "broken" / "support.junit.xml").getroot()
    failed = {tc.get("name") for tc in junit.iter("testcase") if tc.find("failure") is not None}
    assert failed == misrouted
    assert "<html>" in (tmp_path / "broken" / "support.html").read_text()

    # The scores are events on the evaluated runs' agent spans, served with the trace.
    one = next(c for c in gate_cases(tmp_path / "broken") if c["case_id"] in misrouted)
    process.env["COLUMNS"] = "300"
    shown = process.cli("runs", "show", str(one["run_id"]))
    row = next(line for line in shown.splitlines() if "tool_selection" in line)
    assert f"support/{one['case_id']}" in row and "fail" in row and "0.00" in row
    process.start()
    try:
        key = process.create_key()
        response = httpx.get(
            f"{process.url}/runs/{one['run_id']}/trace", headers={"x-api-key": key}
        )
        assert response.status_code == 200, response.text
        spans = response.json()["spans"]
        agent_span = next(s for s in spans if s["name"] == "invoke_agent support")
        events = {
            e["attributes"]["gen_ai.evaluation.name"]: e["attributes"]
            for e in agent_span["events"]
            if e["name"] == "gen_ai.evaluation.result"
        }
        assert events["tool_selection"]["gen_ai.evaluation.score.label"] == "fail"
        assert events["tool_selection"]["gen_ai.evaluation.score.value"] == 0.0
        assert events["tool_selection"]["steward.eval.case"] == one["case_id"]
        assert "search_help_center" in events["tool_selection"]["gen_ai.evaluation.explanation"]
    finally:
        process.stop()


def gate_cases(folder: Path, suite: str = "support") -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((folder / f"{suite}.json").read_text())["cases"]
    return cases


def test_a_missing_suite_is_an_error_exit_1(tmp_path: Path) -> None:
    process = make_process(tmp_path)
    done = subprocess.run(
        [STEWARD, "eval", str(tmp_path / "nope")],
        cwd=ROOT,
        env=process.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "does not exist" in done.stderr


def test_captured_runs_replay_their_recorded_tool_results_without_running_the_tools(
    tmp_path: Path,
) -> None:
    process = make_process(tmp_path)
    assert _eval(process, "--out", str(tmp_path / "good")).returncode == 0
    ran = {str(c["case_id"]): str(c["run_id"]) for c in gate_cases(tmp_path / "good")}
    captured_suite = tmp_path / "captured"
    captured_suite.mkdir()
    (captured_suite / "suite.toml").write_text((SUITE / "suite.toml").read_text())
    out = captured_suite / "cases.jsonl"
    chosen = [ran["ticket-refund"], ran["order-42-where"]]
    for _ in range(2):  # capturing twice appends nothing new
        done = subprocess.run(
            [STEWARD, "eval", "capture", *chosen, "--out", str(out)],
            cwd=ROOT,
            env=process.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["source_run_id"] for c in cases] == chosen
    ticket = cases[0]
    assert ticket["expected_tools"][0]["name"] == "create_ticket"
    (replayed,) = ticket["replay"]
    assert replayed["arguments"]["subject"] == "Refund request"
    tickets = process.home / "tickets.jsonl"
    written = tickets.read_text().splitlines()
    assert replayed["result"]["ticket_id"] in {json.loads(line)["ticket_id"] for line in written}

    done = subprocess.run(
        [STEWARD, "eval", str(captured_suite), "--out", str(tmp_path / "replay")],
        cwd=ROOT,
        env={**process.env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # The write tool was answered from the recording: no ticket was written again.
    assert tickets.read_text().splitlines() == written
    report = gate_cases(tmp_path / "replay", "captured")
    assert [c["tool_calls"][0]["result"] for c in report] == [
        c["replay"][0]["result"] for c in cases
    ]

    missing = subprocess.run(
        [STEWARD, "eval", "capture", "no-such-run", "--out", str(out)],
        cwd=ROOT,
        env=process.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no run no-such-run" in missing.stderr


def test_a_version_compared_with_itself_in_one_invocation_shows_no_regression(
    tmp_path: Path,
) -> None:
    process = make_process(tmp_path)
    done = _eval(process, "--baseline-app", "examples/support.py", "--out", str(tmp_path / "self"))
    assert done.returncode == 0, done.stderr
    gate = json.loads((tmp_path / "self" / "support.json").read_text())["gate"]
    comparison = gate["comparison"]
    assert comparison["paired_cases"] == len(_cases())
    assert (comparison["regressed"], comparison["improved"]) == ([], [])
    assert comparison["pass_fail"]["p_two_sided"] == 1.0
    assert comparison["baseline"].startswith("examples/support.py (support, ")
