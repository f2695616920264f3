"""Ending a sandbox while another end is under way: a delete that arrives while the watchdog is
destroying a sandbox whose lifetime ran out waits for that end and succeeds, and the record
keeps the watchdog's reason. Driven by the real watchdog and a real (unisolated) subprocess
sandbox: the window is the destroy itself, which always spans event-loop turns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from steward.sandbox.manager import CreateOptions, SandboxManager
from tests.integration.sandbox_support import OTHER, TENANT, open_manager, run

LIFETIME = CreateOptions(backend="process", timeout_s=0.3, idle_timeout_s=3600)


async def watchdog_has_begun_ending(manager: SandboxManager, sandbox_id: str) -> None:
    """Return on the first loop turn after the watchdog took the sandbox to destroy it."""
    # One check per loop turn (no event exists for "taken to be destroyed", by design).
    while sandbox_id in manager._live:  # noqa: ASYNC110
        await asyncio.sleep(0)
    assert manager.get(TENANT, sandbox_id).state == "running"  # its end is not recorded yet


async def test_delete_during_the_watchdogs_end_waits_for_it_and_succeeds(tmp_path: Path) -> None:
    manager = await open_manager(tmp_path, allow_unisolated=True)
    try:
        info = await manager.create(TENANT, LIFETIME)
        assert (await run(manager, info.id, "echo up")).stdout == b"up\n"
        await watchdog_has_begun_ending(manager, info.id)
        await manager.delete(TENANT, info.id)
        ended = await manager.describe(TENANT, info.id)
        assert ended.state == "deleted" and ended.reason == "its lifetime (timeout_s) ended"
    finally:
        await manager.close()


async def test_concurrent_deletes_of_an_ending_sandbox_all_succeed_and_tenants_stay_apart(
    tmp_path: Path,
) -> None:
    manager = await open_manager(tmp_path, allow_unisolated=True)
    try:
        info = await manager.create(TENANT, LIFETIME)
        await watchdog_has_begun_ending(manager, info.id)
        outcomes = await asyncio.gather(
            manager.delete(TENANT, info.id),
            manager.delete(TENANT, info.id),
            manager.delete(OTHER, info.id),
            return_exceptions=True,
        )
        assert outcomes[:2] == [None, None]
        assert type(outcomes[2]).__name__ == "NotFound"
        assert (await manager.describe(TENANT, info.id)).state == "deleted"
    finally:
        await manager.close()
