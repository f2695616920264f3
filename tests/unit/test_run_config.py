"""A run's config/context merged over its assistant's, recorded in and read back from metadata."""

from __future__ import annotations

from steward.runs.run_config import (
    RUN_KEY,
    RunSettings,
    merge_config,
    merge_context,
    public_metadata,
    record,
    recorded,
)


def test_the_runs_keys_win_and_configurable_merges_key_by_key() -> None:
    assistant = {"tags": ["a"], "recursion_limit": 5, "configurable": {"x": 1, "y": 2}}
    run = {"recursion_limit": 9, "configurable": {"y": 3, "z": 4}}
    assert merge_config(assistant, run) == {
        "tags": ["a"],
        "recursion_limit": 9,
        "configurable": {"x": 1, "y": 3, "z": 4},
    }
    assert merge_config(assistant, None) == assistant
    assert merge_config({}, {"tags": ["t"]}) == {"tags": ["t"]}  # no configurable invented
    assert merge_context({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    assert merge_context({"a": 1}, None) == {"a": 1}


def test_settings_are_recorded_over_any_caller_value_and_hidden_from_metadata() -> None:
    settings = RunSettings("asst-1", {"configurable": {"x": 1}}, {"c": 2})
    metadata = record({"team": "t", RUN_KEY: {"assistant_id": "forged"}}, settings)
    assert recorded(metadata) == settings
    assert public_metadata(metadata) == {"team": "t"}
    assert recorded({}) == RunSettings()
    assert recorded({RUN_KEY: "garbage"}) == RunSettings()
    assert recorded({RUN_KEY: {"assistant_id": 3, "config": [], "context": None}}) == RunSettings()
