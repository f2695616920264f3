"""Steward: a production runtime for AI agents. The public API is what `__all__` lists.

Each name is imported on first use: `import steward` alone (which every `steward` command and
`python -m steward.upstream` pays for) loads neither the database nor the web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from steward.app import Steward
    from steward.errors import (
        ApiError,
        ConfigError,
        CostLimitExceeded,
        ModelError,
        Retryable,
        RunCancelled,
        RunError,
        StepLimitExceeded,
        StewardError,
        ToolError,
        UserError,
        WallTimeExceeded,
    )
    from steward.models.types import Message, ModelResponse, ToolCall, Usage
    from steward.runs.context import Context, LoopResult
    from steward.tools.registry import ToolContext

__all__ = [
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
]

_HOMES = {
    "ApiError": "steward.errors",
    "ConfigError": "steward.errors",
    "Context": "steward.runs.context",
    "CostLimitExceeded": "steward.errors",
    "LoopResult": "steward.runs.context",
    "Message": "steward.models.types",
    "ModelError": "steward.errors",
    "ModelResponse": "steward.models.types",
    "Retryable": "steward.errors",
    "RunCancelled": "steward.errors",
    "RunError": "steward.errors",
    "StepLimitExceeded": "steward.errors",
    "Steward": "steward.app",
    "StewardError": "steward.errors",
    "ToolCall": "steward.models.types",
    "ToolContext": "steward.tools.registry",
    "ToolError": "steward.errors",
    "Usage": "steward.models.types",
    "UserError": "steward.errors",
    "WallTimeExceeded": "steward.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'steward' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
