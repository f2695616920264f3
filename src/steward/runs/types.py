"""The callables a run's parts are wired with: how a step is journaled and how events leave.

Kept apart from `Context` so the parts it builds on (approval gate) need not import it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from steward.durable.types import JsonObject

Journal = Callable[[str, Callable[[], Awaitable[JsonObject]]], Awaitable[JsonObject]]
"""Runs a named effect as one journaled step: `await journal("tool x", fn)`."""

Emit = Callable[[str, Any], None]
"""Publishes one `(event, data)` pair on the run's stream."""
