"""Unicode clean-up applied to untrusted text before anything else reads it.

NFKC folds look-alike forms; tag characters, zero-width, bidi controls and variation selectors
are removed because they hide instructions from people while models still read them.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

_ZERO_WIDTH = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u2060\u2061\u2062"
    "\u2063\u2064\u3164\ufeff\uffa0"
)
_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_TAGS = range(0xE0000, 0xE0080)
# Variation selectors can encode a byte each ("emoji smuggling"); dropping them only
# changes how some emoji are drawn.
_VARIATION = (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))

_DELETE: dict[int, None] = dict.fromkeys(
    [*map(ord, _ZERO_WIDTH), *map(ord, _BIDI), *_TAGS, *_VARIATION]
)


@dataclass(frozen=True)
class Cleaned:
    """The cleaned text, how many invisible characters went, and what the tag characters said."""

    text: str
    removed: int
    smuggled: str  # ASCII spelled in tag characters (U+E0020-E007E), the classic hiding place


def clean_text(text: str) -> Cleaned:
    """NFKC-normalise `text` and remove invisible control characters."""
    if text.isascii():  # the common case: nothing to normalise or remove
        return Cleaned(text, 0, "")
    smuggled = "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)
    normal = unicodedata.normalize("NFKC", text)
    stripped = normal.translate(_DELETE)
    return Cleaned(stripped, len(normal) - len(stripped), smuggled)


def clean_json(value: Any) -> tuple[Any, list[Cleaned]]:
    """Clean every string (keys included) of a JSON value; returns the value and the changes."""
    changes: list[Cleaned] = []

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            cleaned = clean_text(item)
            if cleaned.removed or cleaned.text != item:
                changes.append(cleaned)
            return cleaned.text
        if isinstance(item, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value), changes


def json_strings(value: Any) -> list[str]:
    """Every string inside a JSON value, values and keys, depth first."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(k for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


# Built once: `json.dumps` with options builds an encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
SORTED_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True)
"""Canonical text of a JSON value, for comparing tool calls."""


def json_text(value: Any) -> str:
    """One text holding every string of a JSON value, for pre-filters that look for substrings.

    It is the value serialized (in C, without ASCII escapes): JSON escapes only quotes,
    backslashes and control characters, which no pre-filter substring contains, so any
    substring of a string is a substring of this text. Values `json` cannot serialize fall
    back to the strings joined by a line break.
    """
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        return "\n".join(json_strings(value))
