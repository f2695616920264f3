"""Filtering streamed text deltas without letting a secret slip through a chunk boundary.

Text is held back from the start of the trailing unbroken token (secrets have no spaces), from
an unfinished link or private-key block, and for a short tail; the rest is filtered and sent.
"""

from __future__ import annotations

from collections import Counter

from steward.policy.output_filter import OutputFilter

_TAIL = 48  # covers phone, card and IBAN numbers written with spaces
_LINK_WINDOW = 2048  # an unclosed "[" or "<" further back than this is not waited for


class StreamFilter:
    def __init__(self, output: OutputFilter, counts: Counter[str] | None = None) -> None:
        self._filter = output
        self._buffer = ""
        self.counts = counts if counts is not None else Counter()

    def feed(self, delta: str) -> str:
        """Add a delta; returns the filtered text that is now safe to send (maybe "")."""
        self._buffer += delta
        cut = self._safe_cut(self._buffer)
        if cut <= 0:
            return ""
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return self._filter.text(ready, self.counts)

    def flush(self) -> str:
        """The rest, at the end of the stream."""
        ready, self._buffer = self._buffer, ""
        return self._filter.text(ready, self.counts) if ready else ""

    @staticmethod
    def _safe_cut(buffer: str) -> int:
        cut = len(buffer) - _TAIL
        if cut <= 0:
            return 0
        # Back to the last whitespace before the cut: never split a token.
        space = max(buffer.rfind(" ", 0, cut), buffer.rfind("\n", 0, cut))
        cut = space + 1 if space >= 0 else 0
        begin = buffer.rfind("-----BEGIN")
        if begin >= 0 and buffer.find("-----END", begin) < 0:
            cut = min(cut, begin)
        window = max(0, len(buffer) - _LINK_WINDOW)
        for opener, closer in (("[", ")"), ("<", ">")):
            start = buffer.rfind(opener, window)
            if start >= 0 and buffer.find(closer, start) < 0:
                cut = min(cut, start)
        return cut
