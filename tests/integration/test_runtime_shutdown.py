"""`Runtime.stop` stops every part even when one of them fails to stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.config import Settings
from steward.runtime import Runtime
from tests.apps.testing_app import app as testing_app


class SandboxCloseFailed(Exception):
    pass


async def test_a_part_that_fails_to_stop_does_not_keep_the_others_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_TEST_LEDGER", str(tmp_path / "ledger.jsonl"))
    settings = Settings(home=tmp_path / "home", model="local", apps=[], sandbox_pool_size=0)
    first = Runtime.build(settings, testing_app, execute=True)
    await first.start()
    claimed = first.executor_id

    async def fail_to_close() -> None:  # injected fault: the first part stopped raises
        raise SandboxCloseFailed("sandbox backend refused to close")

    monkeypatch.setattr(first.sandboxes, "close", fail_to_close)
    with pytest.raises(SandboxCloseFailed):
        await first.stop()

    # The durable core, the worker registration and the rest stopped all the same: a new
    # runtime in this process starts and claims the same worker slot the first one freed.
    second = Runtime.build(settings, testing_app, execute=True)
    await second.start()
    try:
        assert second.executor_id == claimed
    finally:
        await second.stop()
