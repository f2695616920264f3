"""Exact-value redaction of secrets this process has handed out: their plaintext is replaced by
`[REDACTED:name]` in run outputs, tool results, errors, stream events, spans and log records.

Pattern-based redaction of unknown secrets and PII is the policy layer's; this catches the
values Steward itself decrypted, whatever shape they have.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

# Shorter values would redact ordinary words; the secret store refuses to hand them out.
MIN_SECRET_LENGTH = 8


class SecretRedactor:
    def __init__(self) -> None:
        self._values: dict[str, str] = {}  # plaintext -> name
        self._lock = threading.Lock()

    def register(self, name: str, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            # Longest first, so a secret containing another is replaced whole.
            self._values = dict(
                sorted({**self._values, value: name}.items(), key=lambda kv: -len(kv[0]))
            )

    @property
    def active(self) -> bool:
        return bool(self._values)

    def scrub_text(self, text: str) -> str:
        for value, name in self._values.items():
            if value in text:
                text = text.replace(value, f"[REDACTED:{name}]")
        return text

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON-like value with every known secret replaced; iterative, any depth."""
        if not self._values:
            return value
        root: list[Any] = [value]
        pending: list[tuple[Any, Any]] = [(root, 0)]
        while pending:
            container, key = pending.pop()
            item = container[key]
            if isinstance(item, str):
                container[key] = self.scrub_text(item)
            elif isinstance(item, dict):
                copy = {self.scrub_text(k) if isinstance(k, str) else k: v for k, v in item.items()}
                container[key] = copy
                pending.extend((copy, k) for k in copy)
            elif isinstance(item, list | tuple):
                items = list(item)
                container[key] = items
                pending.extend((items, i) for i in range(len(items)))
        return root[0]


REDACTOR = SecretRedactor()
_factory_installed = False


def install_log_redaction() -> None:
    """Scrub known secrets from every log record this process creates, message and traceback."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if REDACTOR.active:
            record.msg = REDACTOR.scrub_text(record.getMessage())
            record.args = ()
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text = REDACTOR.scrub_text(text)
                record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
