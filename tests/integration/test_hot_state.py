"""The hot state, one suite over memory and Redis: ordered logs that late readers replay,
heartbeats for idle readers, bounded logs, and session values that expire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from steward.store.hot import HEARTBEAT, HotState, MemoryHotState
from steward.store.hot_redis import RedisHotState, to_event_id, to_stream_id
from tests.redis_server import SHARED_REDIS_URL, drop_prefix, unique_prefix

MakeHot = Callable[..., HotState]


@pytest.fixture(params=["memory", "redis"])
async def make_hot(request: pytest.FixtureRequest) -> AsyncIterator[MakeHot]:
    created: list[HotState] = []
    prefix = unique_prefix()

    def make(max_events: int = 10_000) -> HotState:
        hot: HotState
        if request.param == "memory":
            hot = MemoryHotState(max_events=max_events)
        else:
            hot = RedisHotState(SHARED_REDIS_URL, prefix=prefix, max_events=max_events)
        created.append(hot)
        return hot

    yield make
    for hot in created:
        await hot.aclose()
    if request.param == "redis":
        await drop_prefix(SHARED_REDIS_URL, prefix)


async def _take(hot: HotState, channel: str, count: int, after: int = 0) -> list[int]:
    seen: list[int] = []
    async for _event_id, event in hot.read(channel, after=after):
        seen.append(event["n"])
        if len(seen) == count:
            return seen
    return seen


async def test_late_reader_replays_backlog_then_follows_live_events(make_hot: MakeHot) -> None:
    hot = make_hot()
    for n in range(3):
        await hot.publish("c", {"n": n})
    reader = asyncio.create_task(_take(hot, "c", 5))
    await asyncio.sleep(0.05)
    hot.publish_nowait("c", {"n": 3})
    hot.publish_nowait("c", {"n": 4})
    assert await asyncio.wait_for(reader, 5) == [0, 1, 2, 3, 4]


async def test_reader_resumes_after_a_given_event_id(make_hot: MakeHot) -> None:
    hot = make_hot()
    ids = [await hot.publish("c", {"n": n}) for n in range(4)]
    assert ids == sorted(ids)
    assert await asyncio.wait_for(_take(hot, "c", 2, after=ids[1]), 5) == [2, 3]


async def test_ids_yielded_by_read_resume_where_the_reader_stopped(make_hot: MakeHot) -> None:
    hot = make_hot()
    for n in range(5):
        hot.publish_nowait("c", {"n": n})
    last_seen = 0
    async for event_id, event in hot.read("c"):
        last_seen = event_id
        if event["n"] == 2:
            break
    assert await asyncio.wait_for(_take(hot, "c", 2, after=last_seen), 5) == [3, 4]


async def test_events_published_by_another_instance_reach_the_reader(make_hot: MakeHot) -> None:
    publisher, reader_side = make_hot(), make_hot()
    if isinstance(publisher, MemoryHotState):
        reader_side = publisher  # memory is per process: one instance is the whole fan-out
    reader = asyncio.create_task(_take(reader_side, "run:x", 2))
    await asyncio.sleep(0.05)
    publisher.publish_nowait("run:x", {"n": 1})
    publisher.publish_nowait("run:x", {"n": 2})
    assert await asyncio.wait_for(reader, 5) == [1, 2]


async def test_channels_are_independent(make_hot: MakeHot) -> None:
    hot = make_hot()
    await hot.publish("a", {"n": 1})
    await hot.publish("b", {"n": 2})
    assert await asyncio.wait_for(_take(hot, "b", 1), 5) == [2]


async def test_idle_reader_gets_heartbeats(make_hot: MakeHot) -> None:
    hot = make_hot()
    async for event_id, event in hot.read("quiet", heartbeat_s=0.01):
        assert (event_id, event) == (0, HEARTBEAT)
        break


async def test_log_length_is_bounded(make_hot: MakeHot) -> None:
    hot = make_hot(max_events=3)
    for n in range(10):
        await hot.publish("c", {"n": n})
    assert await asyncio.wait_for(_take(hot, "c", 3), 5) == [7, 8, 9]


async def test_session_values_expire_after_their_ttl(make_hot: MakeHot) -> None:
    hot = make_hot()
    await hot.put_session("s1", {"cart": [1, 2]}, ttl_s=0.2)
    await hot.put_session("s2", {"keep": True}, ttl_s=60)
    assert await hot.get_session("s1") == {"cart": [1, 2]}
    await asyncio.sleep(0.3)
    assert await hot.get_session("s1") is None
    assert await hot.get_session("s2") == {"keep": True}
    await hot.drop_session("s2")
    assert await hot.get_session("s2") is None


def test_redis_stream_ids_map_to_ordered_integers() -> None:
    ids = ["1700000000000-0", "1700000000000-1", "1700000000001-0"]
    mapped = [to_event_id(i) for i in ids]
    assert mapped == sorted(mapped)
    assert [to_stream_id(m) for m in mapped] == ids
    assert to_stream_id(0) == "0-0"


async def test_an_awaited_publish_lands_after_earlier_unawaited_ones(make_hot: MakeHot) -> None:
    hot = make_hot()
    for n in range(5):
        hot.publish_nowait("order", {"n": n})
    marker = await hot.publish("order", {"n": 5})
    seen = []
    async for event_id, event in hot.read("order"):
        seen.append((event_id, event["n"]))
        if event["n"] == 5:
            break
    assert [n for _, n in seen] == [0, 1, 2, 3, 4, 5]
    assert seen[-1][0] == marker
    assert all(event_id < marker for event_id, _ in seen[:-1])


async def test_an_unreachable_redis_drops_events_without_raising() -> None:
    hot = RedisHotState("redis://127.0.0.1:1/0", retry_interval_s=0.01)
    try:
        hot.publish_nowait("c", {"n": 1})
        assert await hot.publish("c", {"n": 2}) == 0
        assert hot.dropped == 2
        async for event_id, event in hot.read("c", heartbeat_s=0.01):
            assert (event_id, event) == (0, HEARTBEAT)  # readers fall back to their source
            break
    finally:
        await hot.aclose()
