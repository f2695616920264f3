"""The dashboard's waterfall layout: tree order, depth, bar geometry, kinds, totals, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from steward.server.ui.waterfall import build_waterfall

_T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def span(
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: int,
    end_ms: int,
    operation: str | None = None,
    status: str = "OK",
    **attributes: Any,
) -> dict[str, Any]:
    if operation is not None:
        attributes["gen_ai.operation.name"] = operation
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "start_time": (_T0 + timedelta(milliseconds=start_ms)).isoformat(),
        "end_time": (_T0 + timedelta(milliseconds=end_ms)).isoformat(),
        "duration_ms": float(end_ms - start_ms),
        "status": status,
        "status_message": None,
        "attributes": attributes,
    }


def test_children_follow_their_parent_with_depth_offset_and_width() -> None:
    spans = [
        span(
            "b",
            "a",
            "chat m",
            100,
            300,
            "chat",
            **{
                "gen_ai.usage.cost": 0.25,
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 2,
            },
        ),
        span("a", None, "invoke_agent x", 0, 1000, "invoke_agent"),
        span("d", "c", "approval wait", 600, 650),
        span("c", "a", "execute_tool t", 500, 900, "execute_tool"),
        span("e", "a", "chat m", 910, 1000, "chat", **{"gen_ai.usage.cost": 0.5}),
    ]
    waterfall = build_waterfall(spans)
    assert [r.span_id for r in waterfall.rows] == ["a", "b", "c", "d", "e"]
    assert [r.depth for r in waterfall.rows] == [0, 1, 1, 2, 1]
    assert [r.kind for r in waterfall.rows] == ["agent", "model", "tool", "approval", "model"]
    chat = waterfall.rows[1]
    assert (chat.offset_pct, chat.width_pct) == (10.0, 20.0)
    assert waterfall.total_ms == 1000.0
    assert waterfall.cost_usd == 0.75
    assert (waterfall.input_tokens, waterfall.output_tokens) == (10, 2)


def test_a_failed_span_carries_its_error_and_an_orphan_becomes_a_root() -> None:
    spans = [
        span("a", None, "invoke_agent x", 0, 100, "invoke_agent"),
        span(
            "z",
            "gone",
            "execute_tool t",
            10,
            20,
            "execute_tool",
            status="ERROR",
            **{"error.type": "ToolError"},
        ),
    ]
    rows = build_waterfall(spans).rows
    assert [(r.span_id, r.depth) for r in rows] == [("a", 0), ("z", 0)]
    assert rows[1].error == "ToolError"
    assert rows[0].error is None


def test_no_spans_is_an_empty_waterfall() -> None:
    waterfall = build_waterfall([])
    assert (waterfall.rows, waterfall.total_ms, waterfall.cost_usd) == ([], 0.0, 0.0)
