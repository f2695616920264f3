"""The README's "Embedding the runtime" example runs as written, in a fresh directory with no
API key created first (the `default` tenant comes with the migrations)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_example(heading: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python example under {heading!r}"
    return match.group(1)


def test_the_readme_embedding_example_runs_in_a_fresh_directory(tmp_path: Path) -> None:
    script = tmp_path / "embed.py"
    script.write_text(readme_example("Embedding the runtime"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env["STEWARD_SANDBOX_POOL_SIZE"] = "0"  # the example needs no sandbox
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "success {'output': 'HELLO'}"
