"""`steward slo report` as an operator runs it, over the runs a real `steward eval` made."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from steward.observe.trace_store import list_run_spans
from steward.store.database import Database
from tests.conftest import ROOT, STEWARD, make_process


def test_slo_report_prints_the_figures_of_stored_runs(tmp_path: Path) -> None:
    process = make_process(tmp_path)
    env = {**process.env, "COLUMNS": "200"}
    ran = subprocess.run(
        [STEWARD, "eval", "evals/support", "--out", str(tmp_path / "eval")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    cases = json.loads((tmp_path / "eval" / "support.json").read_text())["cases"]
    slo = tmp_path / "slo.toml"
    slo.write_text(
        "[agents.support]\nsuccess_rate = 0.99\np95_latency_s = 30\nttft_p95_s = 5\n"
        "cost_per_run_usd = 0.01\n"
        "window_hours = 1\n"
    )
    done = subprocess.run(
        [STEWARD, "slo", "report", "--file", str(slo), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (agent,) = json.loads(done.stdout)["agents"]
    assert (agent["runs"], agent["successes"]) == (len(cases), len(cases))
    latencies = sorted(c["latency_s"] for c in cases)
    p95 = latencies[-(-95 * len(latencies) // 100) - 1]  # nearest rank
    assert abs(agent["figures"]["p95_latency_s"] - p95) < 1e-6
    assert agent["figures"]["cost_per_run_usd"] == 0.0
    # Time to first token: per run, its first model call's, read here from the trace store.
    db = Database(f"sqlite:///{process.home / 'steward.db'}")
    try:
        firsts = []
        for case in cases:
            chats = [
                s for s in list_run_spans(db, "default", case["run_id"]) if s["name"] == "chat dev"
            ]
            firsts.append(chats[0]["attributes"]["gen_ai.response.time_to_first_chunk"])
    finally:
        db.dispose()
    ttfts = sorted(firsts)
    assert agent["figures"]["ttft_p95_s"] == ttfts[-(-95 * len(ttfts) // 100) - 1]
    assert {o["objective"]: o["met"] for o in agent["objectives"]} == {
        "success_rate": True,
        "p95_latency_s": True,
        "ttft_p95_s": True,
        "cost_per_run_usd": True,
    }
    table = subprocess.run(
        [STEWARD, "slo", "report", "--file", str(slo)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0 and "success_rate" in table.stdout and "support" in table.stdout
    bad = subprocess.run(
        [STEWARD, "slo", "report", "--file", str(tmp_path / "none.toml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "no SLO file" in bad.stderr
