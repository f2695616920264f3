"""Hot state: short-lived event logs and session values shared between Steward's processes.

Each channel is an append-only log with increasing ids, so a late or reconnecting reader replays
what it missed (`after=id`) and then follows live. Session values are small JSON objects that
expire on their own. The embedded implementation lives in memory; `hot_redis.RedisHotState`
(scale-out, Redis Streams) implements the same protocol. Hot state is never the system of
record: losing it may cost latency, never a run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Event = dict[str, Any]
HEARTBEAT: Event = {"event": "heartbeat"}


class HotState(Protocol):
    def publish_nowait(self, channel: str, event: Event) -> None:
        """Append an event without waiting. Events of one publisher keep their order."""

    async def publish(self, channel: str, event: Event) -> int:
        """Append an event and return its id once it is stored."""

    def read(
        self, channel: str, *, after: int = 0, heartbeat_s: float | None = None
    ) -> AsyncIterator[tuple[int, Event]]:
        """Yield (id, event) after `after`: the retained backlog, then live events, forever.

        With `heartbeat_s`, yields `(0, HEARTBEAT)` whenever that long passes without an event
        (or while the store is unreachable), so a reader can re-check the system of record.
        """

    async def put_session(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Store a small JSON object that disappears `ttl_s` seconds later."""

    async def get_session(self, key: str) -> dict[str, Any] | None:
        """The stored object, or None when absent or expired."""

    async def drop_session(self, key: str) -> None: ...

    async def add_to_counter(self, key: str, amount: int, ttl_s: float) -> int:
        """Add `amount` atomically to an integer (0 when absent) and return the new value; the
        counter disappears `ttl_s` seconds after it was created."""

    async def get_counter(self, key: str) -> int | None: ...

    async def drop_sessions(self, prefix: str) -> int:
        """Drop every session value and counter whose key starts with `prefix`."""

    async def aclose(self) -> None:
        """Release connections; the instance is unusable afterwards."""


@dataclass
class _Channel:
    events: list[tuple[int, Event]] = field(default_factory=list)
    next_id: int = 1
    touched: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryHotState:
    """Per-process logs, bounded in length and dropped `retention_s` after their last event."""

    def __init__(self, *, retention_s: float = 600.0, max_events: int = 10_000) -> None:
        self._channels: dict[str, _Channel] = {}
        self._sessions: dict[str, tuple[float, dict[str, Any]]] = {}
        self._counters: dict[str, tuple[float, int]] = {}
        self._retention_s = retention_s
        self._max_events = max_events
        self._publishes = 0

    def publish_nowait(self, channel: str, event: Event) -> None:
        self._append(channel, event)

    async def publish(self, channel: str, event: Event) -> int:
        return self._append(channel, event)

    def _append(self, channel: str, event: Event) -> int:
        log = self._channels.setdefault(channel, _Channel())
        event_id = log.next_id
        log.next_id += 1
        log.events.append((event_id, event))
        if len(log.events) > self._max_events:
            del log.events[: len(log.events) - self._max_events]
        log.touched = time.monotonic()
        log.changed.set()
        log.changed = asyncio.Event()
        self._publishes += 1
        if self._publishes % 512 == 0:
            self._expire()
        return event_id

    async def read(
        self, channel: str, *, after: int = 0, heartbeat_s: float | None = None
    ) -> AsyncIterator[tuple[int, Event]]:
        while True:
            log = self._channels.setdefault(channel, _Channel())
            waiter = log.changed
            for event_id, event in log.events:
                if event_id > after:
                    after = event_id
                    yield event_id, event
            if log.next_id - 1 > after:
                continue  # published while we were yielding
            try:
                await asyncio.wait_for(waiter.wait(), heartbeat_s)
            except TimeoutError:
                yield 0, HEARTBEAT

    async def put_session(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        self._sessions[key] = (time.monotonic() + ttl_s, value)

    async def get_session(self, key: str) -> dict[str, Any] | None:
        entry = self._sessions.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._sessions[key]
            return None
        return entry[1]

    async def drop_session(self, key: str) -> None:
        self._sessions.pop(key, None)

    async def add_to_counter(self, key: str, amount: int, ttl_s: float) -> int:
        now = time.monotonic()
        expires, value = self._counters.get(key, (now + ttl_s, 0))
        if expires <= now:
            expires, value = now + ttl_s, 0
        self._counters[key] = (expires, value + amount)
        return value + amount

    async def get_counter(self, key: str) -> int | None:
        entry = self._counters.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    async def drop_sessions(self, prefix: str) -> int:
        keys = [k for k in self._sessions if k.startswith(prefix)]
        counters = [k for k in self._counters if k.startswith(prefix)]
        for key in keys:
            del self._sessions[key]
        for key in counters:
            del self._counters[key]
        return len(keys) + len(counters)

    async def aclose(self) -> None:
        self._channels.clear()
        self._sessions.clear()
        self._counters.clear()

    def _expire(self) -> None:
        cutoff = time.monotonic() - self._retention_s
        for name in [n for n, log in self._channels.items() if log.touched < cutoff]:
            del self._channels[name]
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._sessions.items() if expires <= now]:
            del self._sessions[key]
        for key in [k for k, (expires, _) in self._counters.items() if expires <= now]:
            del self._counters[key]
