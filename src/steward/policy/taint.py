"""Taint tracking: whether untrusted content has entered a run, and which values are trusted.

Rebuilt from the run's journaled steps on every execution (a replay feeds the same step
results in the same order), never kept in process memory across a crash.
"""

from __future__ import annotations

import re
from typing import Any

from steward.policy.text import json_strings

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class TaintState:
    """Trusted text (the run's input, the developer's prompts) and the untrusted sources seen."""

    def __init__(self, trusted_input: Any = None) -> None:
        self.sources: list[str] = []
        self.called_before_taint: list[str] = []
        self.frozen_tools: frozenset[str] | None = None
        self._trusted_text: list[str] = []
        self._trusted_numbers: set[str] = set()
        if trusted_input is not None:
            self.trust(trusted_input)

    @property
    def tainted(self) -> bool:
        return bool(self.sources)

    def trust(self, value: Any) -> None:
        """Add the strings and numbers of a JSON value to the trusted corpus."""
        for text in json_strings(value):
            self._trusted_text.append(" ".join(text.casefold().split()))
            self._trusted_numbers.update(_canonical(n) for n in _NUMBER.findall(text))
        for number in _json_numbers(value):
            self._trusted_numbers.add(_canonical(str(number)))

    def freeze(self, tools: tuple[str, ...] | list[str]) -> None:
        """Plan-then-execute: fix the tool set before any untrusted read."""
        if self.frozen_tools is None:
            self.frozen_tools = frozenset(tools)

    def called(self, tool: str) -> None:
        if not self.tainted:
            self.called_before_taint.append(tool)

    def mark(self, source: str) -> bool:
        """Record untrusted content from `source`; True if this is the first."""
        first = not self.sources
        self.sources.append(source)
        return first

    def untrusted_arguments(self, arguments: dict[str, Any]) -> list[str]:
        """Paths of argument values not found in trusted text (empty: all trusted)."""
        found: list[str] = []

        def walk(path: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    walk(f"{path}.{key}" if path else str(key), item)
            elif isinstance(value, list | tuple):
                for index, item in enumerate(value):
                    walk(f"{path}[{index}]", item)
            elif isinstance(value, str):
                if not self._string_trusted(value):
                    found.append(path)
            elif (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and _canonical(str(value)) not in self._trusted_numbers
            ):
                found.append(path)

        walk("", arguments)
        return found

    def _string_trusted(self, value: str) -> bool:
        needle = " ".join(value.casefold().split())
        return not needle or any(needle in text for text in self._trusted_text)


def _canonical(number: str) -> str:
    try:
        value = float(number)
    except ValueError:
        return number
    return str(int(value)) if value.is_integer() else repr(value)


def _json_numbers(value: Any) -> list[int | float]:
    found: list[int | float] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int | float):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found
