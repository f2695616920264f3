"""An exact-match cache of whole answers to deterministic requests (temperature 0, no stream),
keyed per tenant so no tenant ever reads another's answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CachedAnswer:
    raw: bytes
    headers: dict[str, str]


def is_deterministic(body: Mapping[str, Any]) -> bool:
    """Only temperature-0, single-choice, non-streaming requests answer the same every time."""
    n = body.get("n")
    single = n is None or (type(n) is int and n == 1)  # anything else: not ours to interpret
    return body.get("temperature") == 0 and not body.get("stream") and single


def cache_key(
    tenant_id: str, dialect: str, body: Mapping[str, Any], headers: Mapping[str, str]
) -> str:
    canonical = json.dumps(
        {
            "tenant": tenant_id,
            "dialect": dialect,
            "body": body,
            "version": headers.get("anthropic-version"),
            "beta": headers.get("anthropic-beta"),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """In process memory, least-recently-used first out, entries expire after `ttl_s`."""

    def __init__(self, *, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    def get(self, key: str) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, answer: CachedAnswer) -> None:
        self._entries[key] = (time.monotonic() + self.ttl_s, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
