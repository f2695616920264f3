"""Privacy before indexing: personal data and secrets are scrubbed from (or refuse) a memory
before anything is stored or embedded.

It reuses the policy layer's detectors (`policy.redact`: emails, card numbers, phone numbers,
API keys, …) and the secrets this process or the tenant's secret store hold (exact values).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from steward.errors import UserError
from steward.policy.redact import ALL_KINDS, Redactor
from steward.security.redaction import MIN_SECRET_LENGTH, REDACTOR

# Reads a tenant's secret values (the secret store, decrypted); cached for `SECRETS_TTL_S`.
SecretValues = Callable[[str], list[str]]
SECRETS_TTL_S = 30.0


class MemoryRefused(UserError):
    """A memory held personal data or a secret and the policy is to refuse, not scrub."""

    def __init__(self, kinds: list[str]) -> None:
        super().__init__(f"memory refused: it holds {', '.join(kinds)}")
        self.kinds = kinds


class PrivacyFilter:
    """`mode="scrub"` replaces each finding by `[REDACTED:<kind>]`; `mode="refuse"` raises."""

    def __init__(self, *, mode: str = "scrub", secret_values: SecretValues | None = None) -> None:
        if mode not in ("scrub", "refuse"):
            raise ValueError("privacy mode is 'scrub' or 'refuse'")
        self.mode = mode
        self._redactor = Redactor(ALL_KINDS)
        self._secret_values = secret_values
        self._cache: dict[str, tuple[float, list[str]]] = {}

    def clean(self, tenant_id: str, text: str) -> str:
        counts: Counter[str] = Counter()
        cleaned = self._redactor.redact(text, counts)
        for value in self._tenant_secrets(tenant_id):
            if value in cleaned:
                counts["secret"] += cleaned.count(value)
                cleaned = cleaned.replace(value, "[REDACTED:secret]")
        before = cleaned
        cleaned = REDACTOR.scrub_text(cleaned)
        if cleaned != before:
            counts["secret"] += 1
        if counts and self.mode == "refuse":
            raise MemoryRefused(sorted(counts))
        return cleaned

    def clean_json(self, tenant_id: str, value: Any) -> Any:
        if isinstance(value, str):
            return self.clean(tenant_id, value)
        if isinstance(value, dict):
            return {
                self.clean(tenant_id, k) if isinstance(k, str) else k: self.clean_json(tenant_id, v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.clean_json(tenant_id, v) for v in value]
        return value

    def _tenant_secrets(self, tenant_id: str) -> list[str]:
        if self._secret_values is None:
            return []
        cached = self._cache.get(tenant_id)
        now = time.monotonic()
        if cached is None or cached[0] < now:
            values = [v for v in self._secret_values(tenant_id) if len(v) >= MIN_SECRET_LENGTH]
            cached = (now + SECRETS_TTL_S, sorted(values, key=len, reverse=True))
            self._cache[tenant_id] = cached
        return cached[1]
