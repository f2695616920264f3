"""Authentication failures, counted instead of appended one by one.

Every unauthenticated request used to append its own audit record, so anyone could grow the
append-only log as fast as they could send requests. Failures are now gathered per tenant,
source address and reason over a window, and each window becomes one `auth.failure` record with
its count, first and last time and a few sample paths. Memory is bounded: past `max_buckets`
distinct (source, reason) pairs, a tenant's further failures share one overflow bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_WINDOW_S = 60.0
MAX_BUCKETS = 1024
MAX_SAMPLES = 5
_MAX_TEXT = 200
OVERFLOW = "*"

Sink = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class Failure:
    tenant_id: str
    source: str | None
    reason: str
    method: str | None
    path: str | None
    key_prefix: str | None


@dataclass
class _Bucket:
    first_seen: float
    last_seen: float
    count: int = 0
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    key_prefixes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # only the overflow bucket mixes reasons

    def add(self, failure: Failure, now: float) -> None:
        self.count += 1
        self.last_seen = now
        _sample(self.paths, failure.path)
        _sample(self.methods, failure.method)
        _sample(self.key_prefixes, failure.key_prefix)
        _sample(self.reasons, failure.reason)


def _sample(samples: list[str], value: str | None) -> None:
    if value is not None and len(samples) < MAX_SAMPLES:
        value = value[:_MAX_TEXT]
        if value not in samples:
            samples.append(value)


def _iso(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class AuthFailureAggregator:
    """Thread-safe; `add` never touches the database. `flush_due` (called periodically) and
    `flush_all` (on shutdown and before an export) hand finished windows to `sink`."""

    def __init__(
        self,
        sink: Sink,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self.window_s = window_s
        self._max_buckets = max_buckets
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def add(self, failure: Failure) -> None:
        now = self._clock()
        reason = failure.reason[:_MAX_TEXT]
        key = (failure.tenant_id, failure.source or "unknown", reason)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None and len(self._buckets) >= self._max_buckets:
                key = (failure.tenant_id, OVERFLOW, OVERFLOW)
                bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(first_seen=now, last_seen=now)
            bucket.add(failure, now)

    def flush_due(self) -> int:
        """Write every bucket whose window has ended; returns how many records that made."""
        cutoff = self._clock() - self.window_s
        return self._flush(lambda bucket: bucket.first_seen <= cutoff)

    def flush_all(self) -> int:
        return self._flush(lambda _bucket: True)

    def _flush(self, due: Callable[[_Bucket], bool]) -> int:
        with self._lock:
            ready = [(key, b) for key, b in self._buckets.items() if due(b)]
            for key, _ in ready:
                del self._buckets[key]
        for (tenant_id, source, reason), bucket in sorted(ready, key=lambda kb: kb[1].first_seen):
            data: dict[str, Any] = {
                "reason": reason,
                "client": source,
                "count": bucket.count,
                "first_seen": _iso(bucket.first_seen),
                "last_seen": _iso(bucket.last_seen),
                "window_s": self.window_s,
                "paths": bucket.paths,
                "methods": bucket.methods,
                "key_prefixes": bucket.key_prefixes,
            }
            if reason == OVERFLOW:
                data["reasons"] = bucket.reasons
            self._sink(tenant_id, "auth.failure", data)
        return len(ready)
