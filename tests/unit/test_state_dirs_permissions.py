"""An unprivileged Steward starting on a host where a root Steward keeps its sandboxes under
/run/steward-sandboxes must start: that directory is not its to reap (it died at start with
PermissionError)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AS_NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]

SCRIPT = """
import sys
from pathlib import Path
from steward.sandbox import state_dirs

class NoRecords:
    def live_of_owner_prefix(self, prefix):
        return []

state_dirs.RUNTIME_ROOT = Path(sys.argv[1])
state_dirs.StateDirs(Path(sys.argv[2]), "host:1").reap_orphans(NoRecords())
print("reaped")
"""


def test_reaping_skips_a_runtime_root_that_belongs_to_another_user(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("this test needs root and setpriv (util-linux) to act as another user")
    runtime_root = tmp_path / "run"
    (runtime_root / "sbx-1").mkdir(parents=True)
    runtime_root.chmod(0o700)  # root's, as /run/steward-sandboxes is
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    tmp_path.chmod(0o755)
    done = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", SCRIPT, str(runtime_root), str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reaped"
    assert (runtime_root / "sbx-1").is_dir()  # another user's sandbox is left alone
