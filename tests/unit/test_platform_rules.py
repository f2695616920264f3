"""The rules behind the LangGraph Platform resources: cron ticks in time zones, the store's
filters and namespace patterns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from steward.store.crons import InvalidSchedule, check_schedule, next_tick
from steward.store.items import (
    InvalidNamespace,
    _ends_with,
    _labels_match,
    matches,
    validate_namespace,
)


def test_next_tick_reads_the_schedule_in_its_time_zone_across_a_dst_change() -> None:
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    before = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)  # Saturday, still EST
    first = next_tick("0 9 * * *", "America/New_York", before, None)
    second = next_tick("0 9 * * *", "America/New_York", first, None) if first else None
    assert first == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # DST began that night
    assert second == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert next_tick("0 9 * * *", None, before, None) == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)


def test_next_tick_is_strictly_after_and_stops_at_end_time() -> None:
    at = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    assert next_tick("0 * * * *", None, at, None) == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert next_tick("* * * * * */10", None, at, None) == datetime(
        2026, 1, 1, 10, 0, 10, tzinfo=UTC
    )
    end = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    assert next_tick("0 * * * *", None, at, end) is None
    assert next_tick("0 0 31 2 *", None, at, None) is None  # never fires


@pytest.mark.parametrize(
    ("schedule", "zone"),
    [
        ("61 * * * *", None),
        ("* *", None),
        ("* * * * * * * *", None),
        ("0 0 31 2 *", None),
        ("@sometimes", None),
        ("* * * * *", "Mars/Olympus"),
        ("* * * * *", "../../etc/passwd"),
    ],
)
def test_bad_schedules_and_zones_are_refused(schedule: str, zone: str | None) -> None:
    with pytest.raises(InvalidSchedule):
        check_schedule(schedule, zone)


def test_good_schedules_pass() -> None:
    for schedule in ("*/5 * * * *", "0 9 * * 1-5", "@hourly", "* * * * * */2"):
        check_schedule(schedule, "Europe/Paris")


def test_store_filter_equality_and_comparisons() -> None:
    value = {"size": 3, "color": "green", "tags": ["a"]}
    assert matches(value, None)
    assert matches(value, {"color": "green", "tags": ["a"]})
    assert not matches(value, {"color": "blue"})
    assert not matches(value, {"missing": None})
    assert matches(value, {"size": {"$gte": 3, "$lt": 4}})
    assert not matches(value, {"size": {"$gt": 3}})
    assert matches(value, {"missing": {"$ne": 1}})
    assert not matches(value, {"missing": {"$gt": 1}})
    assert not matches(value, {"color": {"$gt": 1}})  # no order between str and int
    assert matches({"spec": {"$gt": 1}}, {"spec": {"$gt": 0}}) is False  # operators, not data
    assert matches({"spec": {"x": 1}}, {"spec": {"x": 1}})


def test_namespaces_are_validated_and_matched_by_label() -> None:
    assert validate_namespace(["a", "b"]) == ("a", "b")
    assert validate_namespace([], allow_empty=True) == ()
    for bad in ([], ["a.b"], [""], ["x"] * 65):
        with pytest.raises(InvalidNamespace):
            validate_namespace(bad)
    assert _labels_match(("a", "b", "c"), ("a", "*"))
    assert not _labels_match(("a",), ("a", "*"))
    assert not _labels_match(("a", "b"), ("x",))
    assert _ends_with(("a", "b", "c"), ("*", "c"))
    assert not _ends_with(("c",), ("b", "c"))
    assert _ends_with(("a",), ())
