"""Which provider answers a model string: one provider instance per deployment, reused.

Agents name a model (`openai:gpt-4.1-mini`) or inherit `STEWARD_MODEL`; provider keys are read
here from the environment and never reach agent code.
"""

from __future__ import annotations

from steward.models.resolve import build_provider, parse_model_string
from steward.models.types import ModelProvider


class ModelRouter:
    def __init__(
        self, default_model: str, *, providers: dict[str, ModelProvider] | None = None
    ) -> None:
        self.default_model = default_model
        self._providers: dict[str, ModelProvider] = dict(providers or {})

    def resolve(self, model: str | None) -> tuple[ModelProvider, str]:
        """The provider for `model` (or the default) and the model name to send it."""
        spec = parse_model_string(model or self.default_model)
        key = f"{spec.provider_kind}|{spec.base_url or ''}"
        provider = self._providers.get(key)
        if provider is None:
            provider = build_provider(spec)
            self._providers[key] = provider
        return provider, spec.model

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
