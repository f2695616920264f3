"""Redaction of secrets and personal data from text that leaves Steward or enters a trace.

One pre-filter scan rejects the common text nothing could match; the rules run only otherwise,
and matches that need a checksum (cards: Luhn, IBANs: mod 97) are replaced only when it holds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Each rule runs only when its cheap gate passes (a substring test in C), so ordinary text costs
# a few substring scans. Order matters: `sk-ant-` is tried before `sk-`.
_SECRETS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "private_key",
        ("-----BEGIN",),
        r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    ("anthropic_key", ("sk-ant-",), r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),
    ("openai_key", ("sk-",), r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("stripe_key", ("k_live_", "k_test_"), r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("steward_key", ("stw_",), r"\bstw_[A-Za-z0-9]{6,}_[A-Za-z0-9_\-]{16,}"),
    (
        "aws_access_key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA"),
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b",
    ),
    (
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    ),
    (
        "slack_webhook",
        ("hooks.slack.com",),
        r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]+",
    ),
    ("slack_token", ("xox",), r"\bxox[abposre]-[A-Za-z0-9\-]{10,}"),
    ("google_api_key", ("AIza",), r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("jwt", ("eyJ",), r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
    # Gates below are tested against the lower-cased text.
    ("bearer_token", ("bearer",), r"(?i:\bbearer\s+)[A-Za-z0-9._~+/\-]{20,}=*"),
    ("password", ("pass", "pwd"), r"(?i:\b(?:password|passwd|pwd)\s*[:=]\s*)[^\s\"',;]{4,}"),
    # AWS secret access keys: 40 characters of base64 mixing cases and digits (git SHAs are
    # lowercase hex, so they pass untouched); looked for only where AWS is named.
    ("aws_secret_key", ("aws",), r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
)
_LOWER_GATED = frozenset({"bearer_token", "password", "aws_secret_key"})
_PII: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("email", ("@",), r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
    ("iban", (), r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
    ("ssn", (), r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"),
    ("card_number", (), r"(?<![\d+-])\d(?:[ \-]?\d){12,18}(?![\d-])"),
    (
        "phone",
        (),
        r"(?<![\w+.])(?:\+\d{8,15}\b"
        r"|(?:\+\d{1,3}[ .\-]?)?\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]\d{3,4}"
        r"|(?:\+\d{1,3}[ .\-]?|(?<!\d[ .\-]))\d{2,4}[ .\-]\d{3,4}[ .\-]\d{3,4})"
        r"(?!\w|[ .\-]\d)",
    ),
)
# Numbers (SSN, card, phone) are looked for only inside runs of digits and separators, which
# one scan finds; ordinary prose has few of them.
_NUMBER_KINDS = frozenset({"ssn", "card_number", "phone"})
# Every IBAN's account part has such a run too, so text without one skips the IBAN rule.
_NEEDS_NUMBER_RUN = frozenset({"iban"})
_NUMBER_RUN = re.compile(r"[+(\d][\d ().\-]{5,}\d\)?")

SECRET_KINDS = frozenset(name for name, _, _ in _SECRETS)
PII_KINDS = frozenset(name for name, _, _ in _PII)
ALL_KINDS = SECRET_KINDS | PII_KINDS
SPARED_KINDS = frozenset({"email"})
"""Kinds a final answer keeps when the user asked for the value (see `OutputFilter.text`)."""


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """The ISO 13616 check: move the first four characters to the end, read letters as
    10..35, and the number modulo 97 must be 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    digits = "".join(str(int(c, 36)) for c in moved)
    return int(digits) % 97 == 1


def _card_valid(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _aws_secret_valid(text: str) -> bool:
    return (
        any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    )


_CHECKS: dict[str, Callable[[str], bool]] = {
    "card_number": _card_valid,
    "iban": iban_valid,
    "aws_secret_key": _aws_secret_valid,
}


@dataclass(frozen=True)
class _Rule:
    kind: str
    gates: tuple[str, ...]
    pattern: re.Pattern[str]
    lower: bool  # gates are tested against the lower-cased text
    check: Callable[[str], bool] | None


_RULES = tuple(
    _Rule(kind, gates, re.compile(source), kind in _LOWER_GATED, _CHECKS.get(kind))
    for kind, gates, source in (*_SECRETS, *_PII)
)


# The pre-filter: every rule's match contains one of these shapes, each led by a literal
# character that is rare in prose (so `re` skips along by first character) and checked further
# by a lookaround. Number rules need 8 digits in a row, 3+3 or 2-4 digits around a separator,
# or 13 characters of digits, spaces and dashes (dates pass); IBANs two capitals before
# a digit pair.
# Case-insensitive gates are looked up in the lower-cased text instead.
_GATES = (
    r"-(?:(?<=sk-)|----BEGIN)",
    r"@",
    r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|Iza)",
    r"J(?<=eyJ)",
    r"_(?:(?<=gh[pousr]_)|(?<=github_)pat_|(?<=[rsp]k_)(?:live|test)_|(?<=stw_))",
    r"xox",
    r"\.slack\.com(?<=hooks\.slack\.com)",
)
_NUMBER_SHAPES = r"\d{7}|\d\d[ .\-]\d{3}|\d-\d{4}|[\d \-]{12}"
_SCAN_ASCII = re.compile(
    "|".join(
        [
            *_GATES,
            *(f"{d}(?:(?<=[A-Z][A-Z]{d})\\d|{_NUMBER_SHAPES})" for d in "0123456789"),
        ]
    )
)
# `\d` also matches other scripts' digits, which the literal-led scan above does not start on.
_SCAN_UNICODE = re.compile("|".join([*_GATES, rf"\d(?:(?<=[A-Z][A-Z]\d)\d|{_NUMBER_SHAPES})"]))


def _lower_gated(text: str) -> bool:
    """Whether a case-insensitively gated rule (bearer, password, AWS secret) may match."""
    lower = text.lower()
    return "bearer" in lower or "aws" in lower or "pass" in lower or "pwd" in lower


class Redactor:
    """Replaces secrets and personal data with `[REDACTED:<kind>]`."""

    def __init__(self, kinds: Iterable[str] = ALL_KINDS) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown redaction kinds: {sorted(unknown)}")
        self._text_rules = tuple(
            r for r in _RULES if r.kind in self.kinds and r.kind not in _NUMBER_KINDS
        )
        self._number_rules = tuple(r for r in _RULES if r.kind in self.kinds & _NUMBER_KINDS)

    def may_match(self, text: str) -> bool:
        """False when no rule can change `text`: one scan that every match needs to pass.

        Strings joined by a non-word separator (`json_text`) give the same answer as each
        string alone, which lets one call clear a whole JSON value.
        """
        if len(text) < 6:
            return False
        if _lower_gated(text):
            return True
        scan = _SCAN_ASCII if text.isascii() else _SCAN_UNICODE
        return scan.search(text) is not None

    def redact(
        self,
        text: str,
        counts: Counter[str] | None = None,
        keep: Callable[[str], bool] | None = None,
    ) -> str:
        """`text` with every match replaced; tallies the kinds found into `counts`.

        A personal-data match for which `keep` answers True stays; secrets always go.
        """
        if not self.may_match(text):
            return text  # the common case: nothing any rule could match
        lower: str | None = None
        has_numbers = _NUMBER_RUN.search(text) is not None
        for rule in self._text_rules:
            if rule.kind in _NEEDS_NUMBER_RUN and not has_numbers:
                continue
            if rule.gates:
                if rule.lower:
                    lower = text.lower() if lower is None else lower
                    haystack = lower
                else:
                    haystack = text
                if not any(gate in haystack for gate in rule.gates):
                    continue
            text = rule.pattern.sub(_replacer(rule, counts, keep), text)
        if self._number_rules and has_numbers:
            text = _NUMBER_RUN.sub(self._number_replacer(counts, keep), text)
        return text

    def _number_replacer(
        self, counts: Counter[str] | None, keep: Callable[[str], bool] | None = None
    ) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            run = match.group(0)
            start, end, whole = match.start(), match.end(), match.string
            if (start and _joined(whole[start - 1])) or (end < len(whole) and _joined(whole[end])):
                return run  # part of a longer token, such as a UUID
            for rule in self._number_rules:
                run = rule.pattern.sub(_replacer(rule, counts, keep), run)
            return run

        return replace

    def redact_json(self, value: Any, counts: Counter[str] | None = None) -> Any:
        """Redact every string of a JSON value (dict keys included)."""
        if isinstance(value, str):
            return self.redact(value, counts)
        if isinstance(value, dict):
            return {
                (self.redact(k, counts) if isinstance(k, str) else k): self.redact_json(v, counts)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact_json(v, counts) for v in value]
        return value


def _joined(char: str) -> bool:
    return char.isalnum() or char in "-_"


def _replacer(
    rule: _Rule, counts: Counter[str] | None, keep: Callable[[str], bool] | None = None
) -> Callable[[re.Match[str]], str]:
    spare = keep if rule.kind in SPARED_KINDS else None

    def replace(match: re.Match[str]) -> str:
        value = match.group(0)
        start = match.start()
        if start and match.string[start - 1].isalnum():  # not at a word start: no match
            return value
        if rule.check is not None and not rule.check(value):
            return value
        if spare is not None and spare(value):
            return value
        if counts is not None:
            counts[rule.kind] += 1
        return f"[REDACTED:{rule.kind}]"

    return replace
