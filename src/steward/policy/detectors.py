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


# Words every match of a rule contains (lower-cased), so a rule runs only on text holding one:
# ordinary text skips the costly case-insensitive patterns after a few substring tests.
_KEYWORDS: dict[str, tuple[str, ...]] = {
    "ignore_instructions": ("ignore", "disregard", "forget", "override", "bypass", "skip"),
    "new_instructions": ("instruction", "system", "rules", "directive"),
    "jailbreak_persona": (
        "anything",
        "mode",
        "jailbr",
        "longer",
        "unrestricted",
        "unfiltered",
        "uncensored",
        "evil",
        "pretend",
        "without",
    ),
    "forged_role_tag": ("<", "inst]", "system", "instruction", "assistant"),
    "exfiltration_request": (
        "password",
        "api",
        "secret",
        "token",
        "credential",
        "system",
        "conversation",
    ),
    "prompt_leak": ("system", "instruction", "prompt"),
    "tool_instruction": ("tool", "function"),
}
# Characters that `re.IGNORECASE` matches to an ASCII letter but `str.lower` does not map to one.
_CASE_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


class PatternDetector:
    """Regular-expression rules for known attack shapes, compiled once."""

    name = "patterns"

    def __init__(
        self,
        rules: Sequence[tuple[str, float, str]] = _RULES,
        keywords: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        keywords = _KEYWORDS if keywords is None else keywords
        self._rules = [
            (rule, score, re.compile(src, _I | re.MULTILINE), keywords.get(rule))
            for rule, score, src in rules
        ]
        self._ungated = [rule for rule, _, _, words in self._rules if words is None]
        self._words = tuple(sorted({w for _, _, _, words in self._rules for w in words or ()}))
        self._rules_of = {
            word: [rule for rule, _, _, words in self._rules if words and word in words]
            for word in self._words
        }

    def candidates(self, text: str) -> list[str]:
        """The rules whose keywords occur in `text` (rules without keywords always)."""
        lower = (text if text.isascii() else text.translate(_CASE_FOLD)).lower()
        found = [word for word in self._words if word in lower]
        if not found:
            return self._ungated
        rules = {rule for word in found for rule in self._rules_of[word]}
        return [*self._ungated, *rules]

    def classify(self, text: str, rules: Sequence[str] | None = None) -> list[Finding]:
        """Findings in `text`, trying only `rules` when given (from `candidates`)."""
        if rules is None:
            rules = self.candidates(text)
        findings = []
        for rule, score, pattern, _ in self._rules:
            if rule not in rules:
                continue
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

    def may_find(self, joined: str) -> bool:
        """False when no classifier can find anything in the texts `joined` holds."""
        return any(
            not isinstance(c, PatternDetector) or c.candidates(joined) for c in self.classifiers
        )

    def findings_in(self, texts: Sequence[str], joined: str | None = None) -> list[Finding]:
        """Findings in each of `texts`; pattern rules are pre-filtered once over all of them
        (`joined`: any text holding each of them, such as `json_text` of their value)."""
        found: list[Finding] = []
        for classifier in self.classifiers:
            if isinstance(classifier, PatternDetector):
                rules = classifier.candidates("\n".join(texts) if joined is None else joined)
                if rules:
                    for text in texts:
                        found.extend(classifier.classify(text, rules))
            else:
                for text in texts:
                    found.extend(classifier.classify(text))
        return found


def _excerpt(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
