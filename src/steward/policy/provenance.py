"""Value provenance: where each value a run has seen came from, matched by value or token.

Every string and number of the trusted request, the developer's prompts and each tool result is
recorded with its `Source`. An argument's provenance is the sources whose values it equals, or
whose text holds it as a whole run of tokens. Tokens are entity-aware: an email address, a URL,
a date ("June 13", "2026-06-13"), a time, an IBAN, a path or file name, an amount is one token,
so the id "13" is not found in "June 13", nor "bob" in "bob@example.com". There is no substring
matching anywhere.

Rebuilt from journaled step results on every execution, like the taint state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_TOKEN = re.compile(
    "|".join(
        (
            r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)",
            r"(?P<url>https?://[^\s<>\"')\]]+[^\s<>\"')\].,;:!?])",
            r"(?P<iban>(?-i:\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b))",
            r"(?P<date>\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?\b"
            rf"|\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b(?:,?\s+\d{{4}})?"
            r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b)",
            r"(?P<time>\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?\b)",
            r"(?P<path>(?:~|\.{1,2})?/?(?:[\w.-]+/)+[\w.-]+|\b[\w-]+\.[A-Za-z][A-Za-z0-9]{0,4}\b)",
            r"(?P<number>(?:[$€£]\s?)?\d[\d,]*(?:\.\d+)?%?)",
            r"(?P<word>\w+)",
        )
    ),
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")


def tokens(text: str) -> tuple[str, ...]:
    """The canonical tokens of `text`: entities whole, numbers canonical, words case-folded."""
    return tuple(value for _, value in typed_tokens(text))


def typed_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, canonical token) pairs: kind is email, url, iban, date, time, path, number, word."""
    found: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "word"
        value = match.group()
        if kind == "number":
            found.append((kind, canonical_number(value)))
        elif kind in ("iban", "date", "time"):
            found.append((kind, _SPACES.sub("" if kind == "iban" else " ", value.casefold())))
        else:
            found.append((kind, value.casefold()))
    return found


IDENTIFIER_KINDS = frozenset({"email", "url", "iban", "path"})
"""Token kinds that name a party or a place: picked out of free text, they must be unambiguous."""


def canonical_number(text: str) -> str:
    digits = text.strip().lstrip("$€£").strip().rstrip("%").replace(",", "")
    try:
        number = float(digits)
    except ValueError:
        return text.casefold()
    return str(int(number)) if number.is_integer() else repr(number)


@dataclass(frozen=True)
class Source:
    """Where a value came from: the request, a prompt, a tool result (with its call id)."""

    kind: str  # request | system | tool | extract
    trusted: bool
    tool: str | None = None
    call_id: str | None = None
    field: str | None = None  # where in the result: "from", "items.iban" (list indices dropped)

    def label(self) -> str:
        where = f".{self.field}" if self.field else ""
        if self.kind == "tool":
            return f"tool:{self.tool}#{self.call_id}{where}"
        if self.kind == "extract":
            return f"extract#{self.call_id}{where}"
        return self.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "trusted": self.trusted,
            "tool": self.tool,
            "call_id": self.call_id,
            "field": self.field,
        }


@dataclass(frozen=True)
class ArgumentProvenance:
    """One argument leaf (`path`, e.g. `to` or `items[0].id`) and the sources it matched."""

    path: str
    value: Any
    sources: tuple[Source, ...]

    @property
    def trusted(self) -> bool:
        return any(s.trusted for s in self.sources)

    @property
    def untrusted_calls(self) -> frozenset[str]:
        return frozenset(s.call_id for s in self.sources if not s.trusted and s.call_id)

    @property
    def origin(self) -> str:
        """trusted | untrusted (found only in untrusted values) | unknown (found nowhere)."""
        if self.trusted:
            return "trusted"
        return "untrusted" if self.sources else "unknown"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "origin": self.origin,
            "sources": sorted({s.label() for s in self.sources}),
        }


class _Entry:
    __slots__ = ("identifiers", "source", "token_runs", "values")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.values: set[tuple[str, ...]] = set()  # whole values, as token tuples
        self.token_runs: list[tuple[str, ...]] = []  # each string's tokens
        # per string: kind -> the distinct identifiers of that kind it names
        self.identifiers: list[dict[str, set[str]]] = []


class ProvenanceRecord:
    """The per-run record of values and their sources."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def add(self, value: Any, source: Source) -> None:
        """Record every leaf of `value`; results keep each leaf's field in its source."""
        per_field = source.kind in ("tool", "extract")
        entries: dict[str | None, _Entry] = {}
        for path, leaf in _paths("", value):
            name = _field(path) if per_field else None
            entry = entries.get(name)
            if entry is None:
                entry = entries[name] = _Entry(replace(source, field=name) if per_field else source)
                self._entries.append(entry)
            if isinstance(leaf, str):
                typed = typed_tokens(leaf)
                toks = tuple(value for _, value in typed)
                if toks:
                    entry.values.add(toks)
                    entry.token_runs.append(toks)
                    named: dict[str, set[str]] = {}
                    for kind, value in typed:
                        if kind in IDENTIFIER_KINDS:
                            named.setdefault(kind, set()).add(value)
                    entry.identifiers.append(named)
            else:
                entry.values.add((canonical_number(str(leaf)),))

    def sources_of(self, value: Any) -> tuple[Source, ...]:
        """Every source holding `value` whole, or as a whole run of its tokens."""
        needle = tokens(value) if isinstance(value, str) else (canonical_number(str(value)),)
        if not needle:
            return ()
        found: list[Source] = []
        for entry in self._entries:
            if needle in entry.values or any(_holds(run, needle) for run in entry.token_runs):
                found.append(entry.source)
        return tuple(dict.fromkeys(found))

    def whole_value_sources(self, value: Any) -> tuple[Source, ...]:
        """The sources holding `value` as a whole field value (not inside longer text)."""
        needle = tokens(value) if isinstance(value, str) else (canonical_number(str(value)),)
        return tuple(e.source for e in self._entries if needle and needle in e.values)

    def rivals(self, value: str, source: Source) -> set[str]:
        """Other identifiers of `value`'s kind in the free texts of `source` that hold `value`
        inside them: when there are some, which one an argument takes was the model's choice.
        """
        typed = typed_tokens(value)
        if len(typed) != 1 or typed[0][0] not in IDENTIFIER_KINDS:
            return set()
        kind, needle = typed[0]
        found: set[str] = set()
        for entry in self._entries:
            if entry.source != source:
                continue
            for run, named in zip(entry.token_runs, entry.identifiers, strict=True):
                if run != (needle,) and needle in run:
                    found |= named.get(kind, set()) - {needle}
        return found

    def trusted(self, value: Any) -> bool:
        return any(s.trusted for s in self.sources_of(value))

    def arguments(self, arguments: dict[str, Any]) -> list[ArgumentProvenance]:
        """The provenance of every string and number leaf of a call's arguments."""
        found: list[ArgumentProvenance] = []
        for path, leaf in _paths("", arguments):
            if isinstance(leaf, str) and not leaf.strip():
                continue
            found.append(ArgumentProvenance(path, leaf, self.sources_of(leaf)))
        return found


def _holds(run: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    if n > len(run):
        return False
    first = needle[0]
    return any(
        run[i] == first and run[i : i + n] == needle
        for i in range(len(run) - n + 1)  # token-aligned: never inside a token
    )


_INDEX = re.compile(r"\[\d+\]")


def _field(path: str) -> str | None:
    return _INDEX.sub("", path).strip(".") or None


def _paths(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(f"{path}.{key}" if path else str(key), item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _paths(f"{path}[{index}]", item)
    elif isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        yield path, value
