"""The output filter: redaction and link stripping applied to whatever leaves Steward.

Built once per agent from its `OutputPolicy`; tallies what it removed so the run can record it
(kinds and counts only, never the removed text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from steward.policy.declaration import OutputPolicy
from steward.policy.links import LinkFilter
from steward.policy.redact import PII_KINDS, SECRET_KINDS, Redactor
from steward.policy.text import json_text

Keep = Callable[[str], bool]


class OutputFilter:
    def __init__(self, policy: OutputPolicy) -> None:
        kinds = (SECRET_KINDS if policy.redact_secrets else frozenset()) | (
            PII_KINDS if policy.redact_pii else frozenset()
        )
        self.redactor = Redactor(kinds)
        self.links = LinkFilter(policy.allowed_link_hosts) if policy.strip_foreign_links else None

    def text(self, text: str, counts: Counter[str] | None = None, keep: Keep | None = None) -> str:
        """`keep(value)` True spares personal data and links (never secrets): final answers
        keep what the user asked for and lose what an untrusted source slipped in."""
        text = self.redactor.redact(text, counts, keep=keep)
        if self.links is not None:
            text = self.links.filter(text, counts, keep=keep)
        return text

    def may_change(self, text: str) -> bool:
        """False when neither redaction nor link stripping can change `text`."""
        if self.redactor.may_match(text):
            return True
        return self.links is not None and self.links.may_match(text)

    def json(self, value: Any, counts: Counter[str] | None = None, keep: Keep | None = None) -> Any:
        """`value` with every string filtered; `value` itself when nothing would change.

        One pre-filter over all its strings at once clears the common event in a single scan;
        only a value that may hold something is walked string by string.
        """
        if isinstance(value, str):
            return self.text(value, counts, keep)
        if not self.may_change(json_text(value)):
            return value
        return self._walk(value, counts, keep)

    def _walk(self, value: Any, counts: Counter[str] | None, keep: Keep | None) -> Any:
        if isinstance(value, str):
            return self.text(value, counts, keep)
        if isinstance(value, dict):
            return {
                (self.text(k, counts, keep) if isinstance(k, str) else k): self._walk(
                    v, counts, keep
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(v, counts, keep) for v in value]
        return value
