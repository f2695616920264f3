"""Tools declared by JSON Schema: the keyword form of `app.add_tool`, 2020-12 validation with
errors the model can act on, and the bounded line reader of the stdio MCP transport."""

from __future__ import annotations

from typing import Any

import pytest

from steward import Steward, ToolError
from steward.errors import UserError
from steward.tools.mcp_stdio import Overlong, _Lines
from steward.tools.registry import ToolContext
from steward.tools.schema_tools import SchemaTool

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer", "minimum": 1},
        "reason": {"type": "string", "enum": ["damaged", "late"]},
        "items": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["order_id", "reason"],
    "additionalProperties": False,
}
CONTEXT = ToolContext(run_id="r1", tenant_id="t", step=3, idempotency_key="r1:3", call_id="c")


async def refund(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"refunded": args["order_id"], "key": ctx.idempotency_key}


def declared(**options: Any) -> SchemaTool:
    app = Steward()
    tool = app.add_tool(
        name="refund",
        description="Refund an order.",
        input_schema=SCHEMA,
        handler=refund,
        **options,
    )
    assert isinstance(tool, SchemaTool) and app.tools["refund"] is tool
    return tool


async def test_the_handler_gets_validated_arguments_and_the_calls_context() -> None:
    tool = declared(writes=True)
    assert tool.writes and tool.context_param is not None  # the taint gate's idempotency rule
    assert tool.definition().parameters == SCHEMA
    result = await tool.invoke({"order_id": 42, "reason": "late"}, CONTEXT)
    assert result == {"refunded": 42, "key": "r1:3"}


def test_every_mismatch_is_named_for_the_model_to_fix() -> None:
    tool = declared()
    with pytest.raises(ToolError) as caught:
        tool.validate({"order_id": 0, "reason": "bored", "items": [], "extra": 1})
    message = str(caught.value)
    assert message.startswith("invalid arguments for tool 'refund' (fix them and call again)")
    assert "order_id: 0 is less than the minimum of 1" in message
    assert "reason: 'bored' is not one of ['damaged', 'late']" in message
    assert "items: [] should be non-empty" in message
    assert "'extra' was unexpected" in message
    with pytest.raises(ToolError, match="'reason' is a required property"):
        tool.validate({"order_id": 1})
    with pytest.raises(ToolError, match="expected a JSON object"):
        tool.validate([1, 2])  # type: ignore[arg-type]


def test_a_schema_that_is_not_json_schema_is_refused_at_declaration() -> None:
    app = Steward()
    with pytest.raises(UserError, match="not valid JSON Schema"):
        app.add_tool(name="x", input_schema={"type": "objct"}, handler=refund)
    with pytest.raises(UserError, match="must describe an object"):
        app.add_tool(name="x", input_schema={"type": "string"}, handler=refund)
    with pytest.raises(UserError, match="needs a Tool, or name, input_schema and handler"):
        app.add_tool(name="x", handler=refund)
    app.add_tool(name="x", input_schema={"type": "object"}, handler=refund)
    with pytest.raises(UserError, match="declared twice"):
        app.add_tool(name="x", input_schema={"type": "object"}, handler=refund)


def test_stdio_lines_over_the_limit_are_dropped_as_they_stream_in() -> None:
    lines = _Lines(limit=10)
    assert lines.feed(b'{"id":1}\n{"id"') == [b'{"id":1}']
    assert lines.feed(b':2,"x":"') == []
    assert lines.feed(b"y" * 1000) == []
    assert len(lines.buffer) == 0  # nothing of the long line is held
    assert lines.feed(b'yy"}\nok\n') == [Overlong(b'{"id":2,"x":"'), b"ok"]
