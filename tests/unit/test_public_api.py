"""The public API is deliberate: `steward.__all__` is exactly what users may import."""

from __future__ import annotations

import steward

EXPECTED = {
    "ApiError",
    "ConfigError",
    "Context",
    "CostLimitExceeded",
    "LoopResult",
    "Message",
    "ModelError",
    "ModelResponse",
    "Retryable",
    "RunCancelled",
    "RunError",
    "StepLimitExceeded",
    "Steward",
    "StewardError",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "Usage",
    "UserError",
    "WallTimeExceeded",
}


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert set(steward.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in steward.__all__:
        assert getattr(steward, name) is not None
