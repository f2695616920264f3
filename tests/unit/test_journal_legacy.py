"""How steps DBOS's `run_step` recorded before the upgrade are numbered in Steward's journal."""

from __future__ import annotations

from steward.durable.journal import legacy_steps


def test_dbos_operations_are_skipped_and_steps_keep_call_order() -> None:
    rows = [
        ("model local", '{"ok":1}', None),
        ("DBOS.recv", "{}", None),
        ("tool lookup", '{"ok":2}', None),
    ]
    assert legacy_steps(rows) == {1: '{"ok":1}', 2: '{"ok":2}'}


def test_numbering_stops_at_a_step_recorded_as_an_exception() -> None:
    rows = [
        ("tool a", '{"ok":1}', None),
        ("tool b", None, "serialized exception"),
        ("tool c", '{"ok":3}', None),
    ]
    assert legacy_steps(rows) == {1: '{"ok":1}'}
