"""Canonical JSON in the manner of RFC 8785 (JCS): the exact bytes the audit log hashes and signs.

Keys sorted by UTF-16 code units, no whitespace, UTF-8, integral floats written as integers,
NaN and infinities refused. Two equal values always give the same bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any


class NotCanonicalizable(ValueError):
    """The value holds something JSON cannot carry exactly (NaN, infinity, a non-JSON type)."""


def canonical_json(value: Any) -> bytes:
    return "".join(_encode(value)).encode("utf-8")


def _encode(value: Any) -> list[str]:
    out: list[str] = []
    pending: list[Any] = [value]
    # Iterative so that a hostile, deeply nested value cannot exhaust the recursion limit.
    while pending:
        item = pending.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, dict):
            pending.extend(reversed(_object_parts(item)))
        elif isinstance(item, list | tuple):
            parts: list[Any] = [_Raw("[")]
            for index, element in enumerate(item):
                if index:
                    parts.append(_Raw(","))
                parts.append(element)
            parts.append(_Raw("]"))
            pending.extend(reversed(parts))
        else:
            out.append(_scalar(item))
    return out


def _object_parts(item: dict[Any, Any]) -> list[Any]:
    if not all(isinstance(key, str) for key in item):
        raise NotCanonicalizable("object keys must be strings")
    parts: list[Any] = [_Raw("{")]
    for index, key in enumerate(sorted(item, key=lambda k: k.encode("utf-16-be"))):
        if index:
            parts.append(_Raw(","))
        parts.append(_Raw(json.dumps(key, ensure_ascii=False) + ":"))
        parts.append(item[key])
    parts.append(_Raw("}"))
    return parts


def _scalar(item: Any) -> str:
    if item is None or isinstance(item, bool | str):
        return json.dumps(item, ensure_ascii=False)
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if not math.isfinite(item):
            raise NotCanonicalizable("NaN and infinity have no JSON form")
        if item.is_integer() and abs(item) < 2**53:
            return str(int(item))
        return repr(item)
    raise NotCanonicalizable(f"{type(item).__name__} is not a JSON value")


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
