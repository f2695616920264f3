"""Per-task privileges (Progent-style): declarative rules on the values a tool's arguments take.

The agent author writes `ArgumentRule`s: allowed values (recipients, accounts), allowed email or
URL domains, a numeric ceiling, path prefixes. A rule with `from_request=True` is derived per run:
its allowed values are those of the argument's kind found in the trusted request (the user's
message and the developer's prompts), so "pay DE89… €120" allows that account and nothing else.
The planner, which sees only trusted input, may narrow rules further (`Plan.limits`).

Checked on every call of the tool, before or after untrusted content; a refused call is told to
the model as an error and the run goes on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from steward.policy.provenance import ProvenanceRecord, canonical_number


@dataclass(frozen=True)
class ArgumentRule:
    tool: str
    argument: str  # a top-level argument, or a dotted path for nested values
    one_of: tuple[str, ...] | None = None  # allowed values, compared case-insensitively
    domains: tuple[str, ...] | None = None  # allowed email / URL domains (and subdomains)
    max: float | None = None  # a ceiling for numbers
    min: float | None = None
    prefixes: tuple[str, ...] | None = None  # allowed path prefixes
    pattern: str | None = None  # a regular expression the whole value must match
    from_request: bool = False  # also allow (only) values that appear in the trusted request

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}


@dataclass(frozen=True)
class Refusal:
    rule: ArgumentRule
    value: Any
    reason: str


def check(
    rules: Sequence[ArgumentRule],
    tool: str,
    arguments: dict[str, Any],
    provenance: ProvenanceRecord | None = None,
) -> Refusal | None:
    """The first rule the call breaks, or None."""
    for rule in rules:
        if rule.tool != tool:
            continue
        present, value = _lookup(arguments, rule.argument)
        if not present:
            continue
        for item in value if isinstance(value, list) else [value]:
            reason = _breaks(rule, item, provenance)
            if reason is not None:
                return Refusal(rule, item, f"{rule.argument}={item!r} {reason}")
    return None


def _breaks(rule: ArgumentRule, value: Any, provenance: ProvenanceRecord | None) -> str | None:
    if rule.from_request and (provenance is None or not provenance.trusted(value)):
        return "is not a value from the user's request"
    text = str(value)
    if rule.one_of is not None and text.casefold() not in {v.casefold() for v in rule.one_of}:
        return f"is not one of the allowed values {list(rule.one_of)}"
    if rule.domains is not None:
        domain = _domain(text)
        if domain is None or not any(
            domain == d.casefold() or domain.endswith("." + d.casefold()) for d in rule.domains
        ):
            return f"is not in the allowed domains {list(rule.domains)}"
    if rule.max is not None or rule.min is not None:
        number = _number(value)
        if number is None:
            return "is not a number"
        if rule.max is not None and number > rule.max:
            return f"is above the ceiling {rule.max:g}"
        if rule.min is not None and number < rule.min:
            return f"is below the floor {rule.min:g}"
    if rule.prefixes is not None and not any(_under(text, p) for p in rule.prefixes):
        return f"is outside the allowed paths {list(rule.prefixes)}"
    if rule.pattern is not None and re.fullmatch(rule.pattern, text) is None:
        return f"does not match {rule.pattern!r}"
    return None


def _under(path: str, prefix: str) -> bool:
    if ".." in path.replace("\\", "/").split("/"):
        return False
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _domain(text: str) -> str | None:
    if "@" in text and "://" not in text:
        return text.rsplit("@", 1)[1].casefold().strip() or None
    host = urlsplit(text if "://" in text else f"//{text}").hostname
    return host.casefold() if host else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(canonical_number(str(value)))
    except ValueError:
        return None


def _lookup(arguments: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = arguments
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value
