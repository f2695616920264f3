"""Loading eval suites: the support suite is valid, and a bad file names the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steward.errors import UserError
from steward.evals.cases import load_suite

ROOT = Path(__file__).resolve().parents[2]


def test_the_support_suite_loads_with_its_gate() -> None:
    suite = load_suite(ROOT / "evals" / "support")
    assert suite.agent == "support" and len(suite.cases) >= 20
    assert suite.config.gate.min_pass_rate == 0.95
    assert {"orders", "tickets"} <= {tag for case in suite.cases for tag in case.tags}


def _write(folder: Path, *lines: str, toml: str | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "cases.jsonl").write_text("\n".join(lines) + "\n")
    if toml is not None:
        (folder / "suite.toml").write_text(toml)
    return folder


def test_a_bad_case_names_its_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"id": "a", "input": {"message": "hi"}})
    folder = _write(tmp_path / "s", good, json.dumps({"id": "b", "input": {}, "tool_match": "x"}))
    with pytest.raises(UserError, match=r"cases.jsonl:2: not a valid eval case"):
        load_suite(folder)
    with pytest.raises(UserError, match="used twice"):
        load_suite(_write(tmp_path / "d", good, good))
    with pytest.raises(UserError, match="no cases"):
        load_suite(_write(tmp_path / "e", ""))
    with pytest.raises(UserError, match=r"suite\.toml"):
        load_suite(_write(tmp_path / "f", good, toml="[gate]\nmin_pass_rate = 2\n"))
    with pytest.raises(UserError, match="tagz"):  # a typo in a field is not ignored
        load_suite(_write(tmp_path / "g", json.dumps({"id": "a", "input": {}, "tagz": []})))
