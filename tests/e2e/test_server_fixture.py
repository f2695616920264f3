"""The `steward dev` test fixture itself: a server that fails to start leaves no process behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_process


def test_server_not_ready_in_time_is_killed_before_start_raises(tmp_path: Path) -> None:
    process = make_process(tmp_path)
    process.ready_timeout_s = 0.0
    with pytest.raises(RuntimeError, match="did not become ready"):
        process.start()
    assert process.proc is not None
    # Reaped, not merely signalled: an orphan `steward dev` would keep its port and data dir.
    assert process.proc.returncode is not None
