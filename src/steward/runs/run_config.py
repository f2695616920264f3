"""A run's LangGraph `config` and `context`: the assistant's merged with the run's own.

As on LangGraph Platform, the run's values win: top-level config keys and `configurable` keys
of the run replace the assistant's, and so do the run's context keys. The merged values and the
assistant the run was started through are recorded in the run's metadata under one reserved key
(so they are part of the durable run row: a resumed run, on any worker, sees the same values),
and the runs API reports them as the run's `assistant_id` and `kwargs`, never as metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUN_KEY = "steward.run"


@dataclass(frozen=True)
class RunSettings:
    assistant_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"assistant_id": self.assistant_id, "config": self.config, "context": self.context}


def merge_config(assistant: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
    run = run or {}
    merged = {**assistant, **run}
    configurable = {
        **_mapping(assistant.get("configurable")),
        **_mapping(run.get("configurable")),
    }
    if configurable or "configurable" in merged:
        merged["configurable"] = configurable
    return merged


def merge_context(assistant: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
    return {**assistant, **(run or {})}


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def record(metadata: dict[str, Any] | None, settings: RunSettings) -> dict[str, Any]:
    """`metadata` with `settings` recorded (replacing whatever a caller put under the key)."""
    return {**(metadata or {}), RUN_KEY: settings.to_json()}


def recorded(metadata: dict[str, Any] | None) -> RunSettings:
    """The settings a run was started with; empty for a run started without any."""
    value = (metadata or {}).get(RUN_KEY)
    if not isinstance(value, dict):
        return RunSettings()
    assistant_id = value.get("assistant_id")
    return RunSettings(
        assistant_id=assistant_id if isinstance(assistant_id, str) else None,
        config=_mapping(value.get("config")),
        context=_mapping(value.get("context")),
    )


def public_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The run's metadata as its caller gave it (without the recorded settings)."""
    return {k: v for k, v in (metadata or {}).items() if k != RUN_KEY}
