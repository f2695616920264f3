"""A run's spans laid out as a waterfall: depth from the parent chain, bar offset and width as
shares of the run's whole time, and the figures each row shows (tokens, cost, errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_SHOWN = (
    "gen_ai.request.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.response.model",
    "gen_ai.usage.cache_read.input_tokens",
    "steward.step",
    "steward.gateway.deployment",
    "steward.gateway.retries",
    "steward.gateway.fallback_used",
    "steward.gateway.cache_hit",
    "steward.tool.attempts",
    "steward.tool.breaker.state",
    "steward.usage.cost_estimated",
    "error.type",
)


@dataclass(frozen=True)
class WaterfallRow:
    span_id: str
    name: str
    kind: str  # agent, model, tool, sandbox, approval or other
    depth: int
    offset_pct: float
    width_pct: float
    duration_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    error: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Waterfall:
    rows: list[WaterfallRow]
    total_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int


def build_waterfall(spans: list[dict[str, Any]]) -> Waterfall:
    if not spans:
        return Waterfall([], 0.0, 0.0, 0, 0)
    starts = {s["span_id"]: _ms(s["start_time"]) for s in spans}
    ends = {s["span_id"]: _ms(s["end_time"]) for s in spans}
    origin = min(starts.values())
    total = max(max(ends.values()) - origin, 1e-6)
    parents = {s["span_id"]: s["parent_span_id"] for s in spans}
    rows = []
    for span in _tree_order(spans):
        attributes = span["attributes"]
        sid = span["span_id"]
        error = span["status_message"] or attributes.get("error.type")
        if span["status"] != "ERROR" and "error.type" not in attributes:
            error = None
        rows.append(
            WaterfallRow(
                span_id=sid,
                name=span["name"],
                kind=_kind(attributes.get("gen_ai.operation.name"), span["name"]),
                depth=_depth(sid, parents),
                offset_pct=round((starts[sid] - origin) / total * 100, 3),
                width_pct=round(max((ends[sid] - starts[sid]) / total * 100, 0.3), 3),
                duration_ms=span["duration_ms"],
                input_tokens=int(attributes.get("gen_ai.usage.input_tokens", 0)),
                output_tokens=int(attributes.get("gen_ai.usage.output_tokens", 0)),
                cost_usd=float(attributes.get("gen_ai.usage.cost", 0.0)),
                error=str(error) if error else None,
                details={k: attributes[k] for k in _SHOWN if k in attributes}
                | {
                    k: v
                    for k, v in attributes.items()
                    if k in ("gen_ai.input.messages", "gen_ai.output.messages")
                },
            )
        )
    return Waterfall(
        rows,
        total,
        sum(r.cost_usd for r in rows),
        sum(r.input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
    )


def _tree_order(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first, children by start time: a parent's row comes right before its children's."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[dict[str, Any]] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        span = stack.pop()
        ordered.append(span)
        stack.extend(reversed(children.get(span["span_id"], [])))
    return ordered


def _depth(span_id: str, parents: dict[str, str | None]) -> int:
    depth, seen = 0, {span_id}
    parent = parents.get(span_id)
    while parent is not None and parent in parents and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = parents.get(parent)
    return depth


def _kind(operation: Any, name: str) -> str:
    if operation == "invoke_agent":
        return "agent"
    if operation in ("chat", "text_completion", "embeddings", "generate_content"):
        return "model"
    if operation == "execute_tool":
        return "tool"
    for kind in ("sandbox", "approval"):
        if kind in name:
            return kind
    return "other"


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000
