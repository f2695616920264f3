"""The in-memory hot state: ordered per-channel logs that late readers replay."""

from __future__ import annotations

import asyncio

from steward.store.hot import HEARTBEAT, MemoryHotState


async def _take(hot: MemoryHotState, channel: str, count: int, after: int = 0) -> list[int]:
    seen: list[int] = []
    async for _event_id, event in hot.read(channel, after=after):
        seen.append(event["n"])
        if len(seen) == count:
            return seen
    return seen


async def test_late_reader_replays_backlog_then_follows_live_events() -> None:
    hot = MemoryHotState()
    for n in range(3):
        hot.publish_nowait("c", {"n": n})
    reader = asyncio.create_task(_take(hot, "c", 5))
    await asyncio.sleep(0)
    hot.publish_nowait("c", {"n": 3})
    hot.publish_nowait("c", {"n": 4})
    assert await asyncio.wait_for(reader, 1) == [0, 1, 2, 3, 4]


async def test_reader_resumes_after_a_given_event_id() -> None:
    hot = MemoryHotState()
    ids = [hot.publish_nowait("c", {"n": n}) for n in range(4)]
    assert await asyncio.wait_for(_take(hot, "c", 2, after=ids[1]), 1) == [2, 3]


async def test_channels_are_independent() -> None:
    hot = MemoryHotState()
    hot.publish_nowait("a", {"n": 1})
    hot.publish_nowait("b", {"n": 2})
    assert await asyncio.wait_for(_take(hot, "b", 1), 1) == [2]


async def test_idle_reader_gets_heartbeats() -> None:
    hot = MemoryHotState()
    async for event_id, event in hot.read("quiet", heartbeat_s=0.01):
        assert (event_id, event) == (0, HEARTBEAT)
        break


async def test_log_length_is_bounded() -> None:
    hot = MemoryHotState(max_events=3)
    for n in range(10):
        hot.publish_nowait("c", {"n": n})
    assert await asyncio.wait_for(_take(hot, "c", 3), 1) == [7, 8, 9]
