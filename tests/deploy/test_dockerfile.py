"""The image's recipe: hadolint-clean, non-root, no compiler, steward as entrypoint, a health
check on /readyz, Python from the hashed lock only; and its steps, run outside Docker, give
an install that serves the example agents (scripts/dockerfile_steps_check.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.deploy.tools import ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"
COMPILERS = ("gcc", "g++", "build-essential", "clang", "make", "python3-dev", "libc6-dev")


def stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.MULTILINE | re.IGNORECASE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_hadolint_finds_nothing_down_to_info_level() -> None:
    out = run(tool("hadolint"), "--failure-threshold", "info", "--no-color", str(DOCKERFILE))
    assert out.strip() == ""


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    # The validator is live: the same call fails on a Dockerfile with a known mistake.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\n")
    done = subprocess.run(
        [tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "DL3007" in done.stdout and "DL3008" in done.stdout


def test_final_stage_is_non_root_without_compilers_with_entrypoint_and_healthcheck() -> None:
    found = stages()
    assert list(found) == ["build", "runtime"]
    runtime = found["runtime"]
    installed = " ".join(re.findall(r"apt-get install ([^&;]+)", runtime))
    assert "bubblewrap" in installed.split()
    assert not set(installed.split()) & set(COMPILERS)
    user = re.findall(r"^USER\s+(\S+)", runtime, flags=re.MULTILINE)
    assert user and re.fullmatch(r"[1-9]\d*:[1-9]\d*", user[-1])
    assert re.search(r'^ENTRYPOINT \["steward"\]$', runtime, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*/readyz", runtime, flags=re.MULTILINE | re.DOTALL)
    # Only the built environment crosses from the build stage.
    assert re.findall(r"COPY --from=(\S+) (\S+)", runtime) == [("build", "/opt/steward")]


def test_python_comes_from_the_lock_with_hashes_and_wheels_only() -> None:
    build = stages()["build"]
    assert "--require-hashes" in build and "--only-binary=:all:" in build
    assert "--no-index" in build  # steward itself: no download at all
    lock = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", lock, flags=re.MULTILINE))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=! ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} (pyproject) is missing from requirements.lock"
    assert pinned["dbos"] == "3.4.0"  # pyproject's exact pin holds in the lock
    assert {"setuptools", "wheel"} <= set(pinned)  # building steward needs nothing unlocked
    blocks = re.split(r"^(?=[a-z0-9])", lock, flags=re.MULTILINE)
    for block in blocks:
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, block.split("\n", 1)[0]


def test_the_dockerfile_steps_build_an_install_that_serves_the_examples() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dockerfile_steps_check.py")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    last = done.stdout.strip().splitlines()[-1]
    figures = dict(pair.split("=", 1) for pair in last.split())
    assert figures["ok"] == "1" and figures["stages"] == "2"
    assert "bubblewrap" in figures["debian_packages"].split(",")
    assert '"tools_used": ["lookup_order"]' in output
