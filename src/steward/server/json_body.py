"""What a JSON body must be before any route sees it: interoperable JSON (I-JSON, RFC 7493).

Python's json module reads `NaN`, `Infinity`, `1e999` (as inf) and lone surrogates (`"\\udfff"`),
none of which PostgreSQL stores, a response can echo, or UTF-8 can encode; accepted, they fail
later, after a run or a row exists. Malformed JSON is left to the route, which answers it in
its own shape.
"""

from __future__ import annotations

import json
import math
from typing import Any

# A lone surrogate can only arrive as a `\uD800`-`\uDFFF` escape: raw UTF-8 cannot encode one.
_SURROGATE_ESCAPES = (b"\\ud", b"\\uD")


class UnportableJson(ValueError):
    """The body parses, but holds a value that interoperable JSON forbids."""


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise UnportableJson(f"the number {text[:40]} does not fit a 64-bit float")
    return value


def _refuse_constant(name: str) -> Any:
    raise UnportableJson(f"{name} is not a JSON number")


def _has_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def unportable_reason(body: bytes) -> str | None:
    """Why `body` must be refused, or None when it is interoperable JSON (or not JSON at all)."""
    if not body:
        return None
    try:
        value = json.loads(body, parse_float=_finite, parse_constant=_refuse_constant)
    except UnportableJson as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None  # malformed, not UTF-8, or too deep: the route answers 400 in its own shape
    if any(escape in body for escape in _SURROGATE_ESCAPES) and _has_lone_surrogate(value):
        return "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff)"
    return None
