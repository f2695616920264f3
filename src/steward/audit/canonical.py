"""Canonical JSON per RFC 8785 (JCS): the exact bytes the audit log hashes and signs.

Keys sorted by UTF-16 code units, no whitespace, UTF-8, numbers written as ECMAScript's
`Number.prototype.toString` writes IEEE 754 doubles (RFC 8785 §3.2.2.3), NaN and infinities
refused. Two equal values always give the same bytes.

Audit entries of format version 1 were written before numbers followed ECMAScript (Python's
`repr`: `1e-07`, `1e+16`); `canonical_json(value, legacy=True)` reproduces that form so those
stored entries still verify byte for byte.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

# Integers beyond ±2^53 are not exact doubles; RFC 8785 treats every number as one.
_EXACT_INT = 2**53


class NotCanonicalizable(ValueError):
    """The value holds something JSON cannot carry exactly (NaN, infinity, a non-JSON type)."""


def canonical_json(value: Any, *, legacy: bool = False) -> bytes:
    return "".join(_encode(value, legacy)).encode("utf-8")


def ecmascript_number(value: float) -> str:
    """`Number.prototype.toString` of a finite double (ECMA-262 §6.1.6.1.20, radix 10)."""
    if not math.isfinite(value):
        raise NotCanonicalizable("NaN and infinity have no JSON form")
    if value == 0:
        return "0"  # also -0
    sign = "-" if value < 0 else ""
    # repr gives the shortest digit string that round-trips, as ECMAScript requires; only the
    # layout of those digits differs between the two.
    shortest = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, shortest.digits))
    count = len(digits)
    point = int(shortest.exponent) + count  # value = 0.digits × 10^point
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    power = point - 1
    mantissa_text = digits[0] + ("." + digits[1:] if count > 1 else "")
    return f"{sign}{mantissa_text}e{'+' if power >= 0 else '-'}{abs(power)}"


def _encode(value: Any, legacy: bool) -> list[str]:
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
            out.append(_legacy_scalar(item) if legacy else _scalar(item))
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
        if abs(item) < _EXACT_INT:
            return str(item)
        try:
            return ecmascript_number(float(item))  # what every JCS peer reads it as
        except OverflowError as exc:
            raise NotCanonicalizable("the integer is too large for an IEEE 754 double") from exc
    if isinstance(item, float):
        return ecmascript_number(item)
    raise NotCanonicalizable(f"{type(item).__name__} is not a JSON value")


def _legacy_scalar(item: Any) -> str:
    """Entry format 1's scalars (Python's float repr), kept only to re-check old entries."""
    if isinstance(item, float) and math.isfinite(item):
        if item.is_integer() and abs(item) < 2**53:
            return str(int(item))
        return repr(item)
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    return _scalar(item)


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
