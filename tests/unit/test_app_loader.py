"""An app file may be named like the package it imports (`examples/pydantic_ai.py` imports
`pydantic_ai`): the file's folder must not shadow installed packages. Before, the loader put
the folder first on `sys.path` and such a file imported itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

APP = """
import yaml  # the installed PyYAML, not this file

from steward import Steward
from helper import GREETING  # a sibling module still imports

app = Steward()
assert yaml.safe_load("a: 1") == {"a": 1}, yaml
assert GREETING == "hi"
"""


def test_an_app_file_named_like_an_installed_package_imports_that_package(
    tmp_path: Path,
) -> None:
    (tmp_path / "yaml.py").write_text(APP, encoding="utf-8")
    (tmp_path / "helper.py").write_text('GREETING = "hi"\n', encoding="utf-8")
    script = (
        "import sys; from steward.cli.loader import load_app; "
        f"app = load_app({str(tmp_path / 'yaml.py')!r}); print(type(app).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Steward"
