"""Promotion to stable is gated by the version's eval: the broken support agent, deployed (with
the sibling module it imports) and evaluated on its stored code, fails the gate with exit 100
and cannot be promoted unless forced with a reason; the good one passes and is promoted. Every
decision is in the signed audit trail, and `steward audit verify` still holds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, STEWARD, StewardProcess, make_process

SUITE = ROOT / "evals" / "support"


def steward(process: StewardProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STEWARD, *args],
        cwd=ROOT,
        env={**process.env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def audit_events(process: StewardProcess) -> list[dict[str, Any]]:
    exported = json.loads(steward(process, "audit", "export").stdout)
    return [r for r in exported["records"] if r["kind"].startswith("rollout.")]


def test_a_version_whose_eval_gate_fails_is_not_promoted_unless_forced(tmp_path: Path) -> None:
    process = make_process(tmp_path)
    broken = steward(process, "deploy", "--app", "examples/support_broken.py")
    assert broken.returncode == 0, broken.stdout + broken.stderr
    assert "support: deployed version 1" in broken.stdout

    unevaluated = steward(process, "rollout", "promote", "support", "1")
    assert unevaluated.returncode == 1
    assert "no eval recorded" in unevaluated.stdout

    evaluated = steward(process, "rollout", "eval", "support", "1", str(SUITE))
    assert evaluated.returncode == 100, evaluated.stdout + evaluated.stderr
    assert "support v1: FAILED" in evaluated.stdout
    failed = [
        line.split("failed: ")[1] for line in evaluated.stdout.splitlines() if "failed: " in line
    ]
    assert len(failed) >= 5  # about a third of the suite is misrouted

    refused = steward(process, "rollout", "promote", "support", "1")
    assert refused.returncode == 1
    assert "eval gate failed" in refused.stdout and "pass rate" in refused.stdout
    no_reason = steward(process, "rollout", "promote", "support", "1", "--force")
    assert no_reason.returncode == 1 and "--force needs --reason" in no_reason.stdout
    forced = steward(
        process, "rollout", "promote", "support", "1", "--force", "--reason", "incident 7 hotfix"
    )
    assert forced.returncode == 0, forced.stdout
    assert "forced past a failing gate" in forced.stdout

    good = steward(process, "deploy", "--app", "examples/support.py")
    assert "support: deployed version 2" in good.stdout, good.stdout + good.stderr
    passed = steward(process, "rollout", "eval", "support", "2", str(SUITE))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    promoted = steward(process, "rollout", "promote", "support", "2")
    assert promoted.returncode == 0, promoted.stdout
    assert "version 2 is stable; was 1" in promoted.stdout

    listed = json.loads(steward(process, "rollout", "list", "support", "--json").stdout)
    assert [(v["version"], v["stable"], v["evaluation"]["passed"]) for v in listed] == [
        (2, True, True),
        (1, False, False),
    ]
    assert sorted(listed[1]["evaluation"]["failed_cases"]) == sorted(failed)
    assert listed[0]["manifest"]["tools"] == ["create_ticket", "lookup_order"]
    assert "search_help_center" in listed[1]["manifest"]["tools"]

    events = [(e["kind"], json.loads(e["entry"])["data"]) for e in audit_events(process)]
    kinds = [kind for kind, _ in events]
    assert kinds == [
        "rollout.deployed",
        "rollout.refused",
        "rollout.refused",
        "rollout.promoted",
        "rollout.deployed",
        "rollout.promoted",
    ]
    forced_event = events[3][1]
    assert forced_event["forced"] is True and forced_event["reason"] == "incident 7 hotfix"
    assert events[5][1]["forced"] is False and events[5][1]["previous"] == 1
    verified = steward(process, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
