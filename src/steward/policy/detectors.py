"""Prompt-injection detectors: the classifier contract and the built-in pattern rules.

A classifier looks at already-cleaned text and returns findings; pattern rules catch the known
attack shapes (instruction overrides, jailbreak personas, forged role and tool tags, exfil asks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Finding:
    """One detector's verdict on one piece of text."""

    detector: str
    rule: str
    score: float  # 0..1, how sure the detector is
    excerpt: str

    def to_json(self) -> dict[str, object]:
        return {
            "detector": self.detector,
            "rule": self.rule,
            "score": round(self.score, 3),
            "excerpt": self.excerpt,
        }


class InjectionClassifier(Protocol):
    """Pluggable: anything with a name and `classify(text) -> findings`."""

    name: str

    def classify(self, text: str) -> list[Finding]: ...


_I = re.IGNORECASE | re.DOTALL
_RULES: tuple[tuple[str, float, str], ...] = (
    (
        "ignore_instructions",
        0.95,
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?"
        r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the|these|those|system)\b"
        r"[^.\n]{0,30}?\b(?:instructions?|prompts?|rules|directions|guidelines|directives?)\b",
    ),
    (
        "new_instructions",
        0.8,
        r"\b(?:new|updated|real|actual|revised|important)\s+"
        r"(?:instructions?|system\s+prompt|rules|directives?)\s*[:\-!]",
    ),
    (
        "jailbreak_persona",
        0.9,
        r"\b(?:do\s+anything\s+now|DAN\s+mode|developer\s+mode\s+(?:enabled|on)|jailbr(?:oken|eak)"
        r"|you\s+are\s+no\s+longer\s+(?:an?\s+)?(?:ai|assistant|bound)"
        r"|act\s+as\s+(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|evil)"
        r"|pretend\s+(?:that\s+)?you\s+(?:are|have)\s+no\s+(?:rules|restrictions|limits)"
        r"|without\s+any\s+(?:restrictions|filters|rules)\s+from\s+now)",
    ),
    (
        "forged_role_tag",
        0.9,
        r"<\|?(?:im_start|im_end|endoftext|system|assistant)\|?>|\[/?(?:INST|SYSTEM)\]|<<SYS>>"
        r"|</?(?:system|assistant|tool_call|tool_result|function_call|instructions?)\s*>"
        r"|^\s*#{1,4}\s*(?:system|instruction)s?\b|^\s*(?:system|assistant)\s*:\s",
    ),
    (
        "exfiltration_request",
        0.85,
        r"\b(?:send|e-?mail|post|forward|upload|exfiltrate|leak|transmit)\b[^\n]{0,80}?"
        r"\b(?:passwords?|api[\s_-]?keys?|secrets?|tokens?|credentials?|system\s+prompt"
        r"|conversation\s+history)\b",
    ),
    (
        "prompt_leak",
        0.75,
        r"\b(?:reveal|print|repeat|show|output|display)\b[^\n]{0,30}?"
        r"\b(?:system\s+prompt|your\s+instructions|hidden\s+instructions|initial\s+prompt)\b",
    ),
    (
        "tool_instruction",
        0.6,
        r"\b(?:you\s+must|now|immediately|please)\s+(?:call|invoke|use|run|execute)\s+"
        r"(?:the\s+)?[\w.-]+\s+(?:tool|function)\b"
        r"|\b(?:call|invoke)\s+(?:the\s+)?(?:tool|function)\s+[`'\"]?\w+",
    ),
)


class PatternDetector:
    """Regular-expression rules for known attack shapes, compiled once."""

    name = "patterns"

    def __init__(self, rules: Sequence[tuple[str, float, str]] = _RULES) -> None:
        self._rules = [
            (rule, score, re.compile(src, _I | re.MULTILINE)) for rule, score, src in rules
        ]

    def classify(self, text: str) -> list[Finding]:
        findings = []
        for rule, score, pattern in self._rules:
            match = pattern.search(text)
            if match is not None:
                findings.append(Finding(self.name, rule, score, _excerpt(match.group(0))))
        return findings


class Screen:
    """Runs every classifier over a text; the first place untrusted text is judged."""

    def __init__(self, classifiers: Sequence[InjectionClassifier]) -> None:
        self.classifiers = tuple(classifiers)

    def findings(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for classifier in self.classifiers:
            found.extend(classifier.classify(text))
        return found


def _excerpt(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
