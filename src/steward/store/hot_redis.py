"""Hot state on Redis Streams: run events fan out from the worker to any API server's readers.

One stream per channel (XADD with an exact MAXLEN and an expiry), read with XREAD BLOCK. While
Redis is unreachable, publishes are dropped and readers only see heartbeats, so they fall back
to polling the system of record (the run row); nothing here is needed to finish a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from steward.store.hot import HEARTBEAT, Event

log = logging.getLogger("steward.hot")

_SEQ_BITS = 20  # Redis stream ids are "<ms>-<seq>"; Steward's ids are ms << 20 | seq
_FIELD = "e"
UNAVAILABLE = (RedisError, OSError)
_Outgoing = tuple[str, Event, "asyncio.Future[int] | None"]


def _glob_escape(text: str) -> str:
    """`text` matched literally by Redis' glob patterns (SCAN MATCH)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def to_event_id(stream_id: bytes | str) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return (int(ms) << _SEQ_BITS) | int(seq or 0)


def to_stream_id(event_id: int) -> str:
    return f"{event_id >> _SEQ_BITS}-{event_id & ((1 << _SEQ_BITS) - 1)}"


class RedisHotState:
    """`HotState` on one Redis; every key starts with `prefix` so deployments can share a Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "steward:",
        retention_s: float = 600.0,
        max_events: int = 10_000,
        retry_interval_s: float = 1.0,
    ) -> None:
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2.0)
        self._prefix = prefix
        self._retention_ms = int(retention_s * 1000)
        self._max_events = max_events
        self._retry_interval_s = retry_interval_s
        self._outbox: asyncio.Queue[_Outgoing] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self.dropped = 0  # events lost to an outage; readers recovered them from the database

    # -- publishing -------------------------------------------------------------------------

    def publish_nowait(self, channel: str, event: Event) -> None:
        self._outbox_here().put_nowait((channel, event, None))

    async def publish(self, channel: str, event: Event) -> int:
        """Through the same ordered outbox as `publish_nowait`, so ids follow publish order.

        Returns 0 when Redis is unreachable (the event is dropped, as with `publish_nowait`).
        """
        stored: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._outbox_here().put_nowait((channel, event, stored))
        return await stored

    def _outbox_here(self) -> asyncio.Queue[_Outgoing]:
        if self._outbox is None:
            self._outbox = asyncio.Queue()
            self._writer = asyncio.get_running_loop().create_task(self._drain(self._outbox))
        return self._outbox

    def _queue_add(self, pipe: Any, channel: str, event: Event) -> None:
        key = self._prefix + "ch:" + channel
        payload = json.dumps(event, default=str, separators=(",", ":"))
        pipe.xadd(key, {_FIELD: payload}, maxlen=self._max_events, approximate=False)
        pipe.pexpire(key, self._retention_ms)

    async def _drain(self, outbox: asyncio.Queue[_Outgoing]) -> None:
        """The single writer: batches in publish order, one round trip per batch."""
        while True:
            batch = [await outbox.get()]
            while not outbox.empty() and len(batch) < 256:
                batch.append(outbox.get_nowait())
            pipe = self._redis.pipeline(transaction=False)
            for channel, event, _ in batch:
                self._queue_add(pipe, channel, event)
            try:
                results = await pipe.execute()
                self._mark_up()
            except UNAVAILABLE as exc:
                self.dropped += len(batch)
                self._mark_down(exc)
                results = [b"0-0", None] * len(batch)
            finally:
                for _ in batch:
                    outbox.task_done()
            for index, (_, _, stored) in enumerate(batch):
                if stored is not None and not stored.done():
                    stored.set_result(to_event_id(results[2 * index]))

    # -- reading ----------------------------------------------------------------------------

    async def read(
        self, channel: str, *, after: int = 0, heartbeat_s: float | None = None
    ) -> AsyncIterator[tuple[int, Event]]:
        key = self._prefix + "ch:" + channel
        last = to_stream_id(after)
        # BLOCK 0 waits forever; a heartbeat interval bounds each wait instead.
        block_ms = max(1, int(heartbeat_s * 1000)) if heartbeat_s is not None else 0
        while True:
            try:
                answer: Any = await self._redis.xread({key: last}, count=512, block=block_ms)
                self._mark_up()
            except UNAVAILABLE as exc:
                self._mark_down(exc)
                await asyncio.sleep(heartbeat_s or self._retry_interval_s)
                if heartbeat_s is not None:
                    yield 0, HEARTBEAT
                continue
            if not answer:
                yield 0, HEARTBEAT
                continue
            for _stream, entries in answer:
                for stream_id, fields in entries:
                    last = stream_id.decode()
                    yield to_event_id(stream_id), json.loads(fields[_FIELD.encode()])

    # -- session values ---------------------------------------------------------------------

    async def put_session(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        await self._redis.set(
            self._prefix + "s:" + key, json.dumps(value), px=max(1, int(ttl_s * 1000))
        )

    async def get_session(self, key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._prefix + "s:" + key)
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def drop_session(self, key: str) -> None:
        await self._redis.delete(self._prefix + "s:" + key)

    async def add_to_counter(self, key: str, amount: int, ttl_s: float) -> int:
        name = self._prefix + "c:" + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(name, amount)
            pipe.pexpire(name, max(1, int(ttl_s * 1000)), nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def get_counter(self, key: str) -> int | None:
        raw = await self._redis.get(self._prefix + "c:" + key)
        return None if raw is None else int(raw)

    async def drop_sessions(self, prefix: str) -> int:
        dropped = 0
        for kind in ("s:", "c:"):
            pattern = _glob_escape(self._prefix + kind + prefix) + "*"
            batch: list[bytes] = []
            async for name in self._redis.scan_iter(match=pattern, count=500):
                batch.append(name)
                if len(batch) >= 500:
                    dropped += int(await self._redis.delete(*batch))
                    batch.clear()
            if batch:
                dropped += int(await self._redis.delete(*batch))
        return dropped

    # -- lifecycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._writer is not None:
            if self._outbox is not None:
                # Give queued events (a run's last ones) a moment to reach Redis.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox.join(), 2.0)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._redis.aclose()

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("redis unreachable (%s); streams fall back to the database", exc)

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.warning("redis reachable again after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None
