"""Steward: a production runtime for AI agents. The public API is what `__all__` lists."""

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
