"""Declaring agents and tools: schemas come from signatures, mistakes fail loudly at import."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from steward import Context, Steward, ToolContext, ToolError, UserError


class In(BaseModel):
    message: str


class Out(BaseModel):
    answer: str


def test_tool_schema_is_derived_from_signature_and_hides_tool_context() -> None:
    app = Steward()

    @app.tool(writes=True)
    def create_ticket(subject: str, priority: int, ctx: ToolContext, urgent: bool = False) -> str:
        """Open a ticket.

        Longer text that is not part of the description."""
        return subject

    tool = app.tools["create_ticket"]
    schema = tool.definition().parameters
    assert set(schema["properties"]) == {"subject", "priority", "urgent"}
    assert schema["required"] == ["subject", "priority"]
    assert schema["additionalProperties"] is False
    assert tool.definition().description == "Open a ticket."
    assert tool.writes and not tool.read_only


def test_tools_are_read_only_by_default() -> None:
    app = Steward()

    @app.tool()
    def lookup(order_id: int) -> int:
        return order_id

    assert app.tools["lookup"].read_only


async def test_tool_arguments_are_validated_before_the_call() -> None:
    app = Steward()
    calls: list[int] = []

    @app.tool()
    def lookup(order_id: int) -> int:
        calls.append(order_id)
        return order_id

    context = ToolContext("r", "t", 1, "r:1", "c")
    with pytest.raises(ToolError, match="invalid arguments"):
        await app.tools["lookup"].invoke({"order_id": "not a number"}, context)
    with pytest.raises(ToolError, match="invalid arguments"):
        await app.tools["lookup"].invoke({"order_id": 1, "extra": True}, context)
    assert calls == []
    assert await app.tools["lookup"].invoke({"order_id": "7"}, context) == 7


def test_agent_reads_input_and_output_models_from_annotations() -> None:
    app = Steward()

    @app.agent(name="a", max_steps=7, timeout_s=5, max_cost_usd=0.1)
    async def agent(ctx: Context, input: In) -> Out:
        return Out(answer=input.message)

    declared = app.agents["a"]
    assert declared.input_model is In and declared.output_model is Out
    assert declared.limits.max_steps == 7
    assert declared.dump_output(Out(answer="x")) == {"answer": "x"}


def test_agent_returning_str_is_wrapped_as_output() -> None:
    app = Steward()

    @app.agent(name="s")
    async def agent(ctx: Context, input: In) -> str:
        return input.message

    assert app.agents["s"].dump_output("hi") == {"output": "hi"}
    assert app.agents["s"].limits.max_steps == 30


@pytest.mark.parametrize(
    "source",
    [
        "def f(ctx, input: In) -> Out: ...",  # not async
        "async def f(ctx) -> Out: ...",  # no input
        "async def f(ctx, input: dict) -> Out: ...",  # input not a model
        "async def f(ctx, input: In) -> int: ...",  # bad return
    ],
)
def test_malformed_agents_are_refused_at_declaration(source: str) -> None:
    namespace: dict[str, object] = {"In": In, "Out": Out}
    exec(source, namespace)
    with pytest.raises(UserError):
        Steward().agent(name="bad")(namespace["f"])  # type: ignore[arg-type]


def test_agent_allowlist_must_name_declared_tools() -> None:
    app = Steward()
    with pytest.raises(UserError, match="unknown tool"):

        @app.agent(name="a", tools=["missing"])
        async def agent(ctx: Context, input: In) -> str:
            return ""


def test_combining_apps_refuses_duplicate_agent_names() -> None:
    first, second = Steward(), Steward()
    for app in (first, second):

        @app.agent(name="same")
        async def agent(ctx: Context, input: In) -> str:
            return ""

    with pytest.raises(UserError, match="two apps"):
        Steward.combine([first, second])


def test_read_only_false_declares_a_write_tool_and_contradictions_are_refused() -> None:
    app = Steward()

    @app.tool(read_only=False)
    def delete_order(order_id: int) -> int:
        return order_id

    assert app.tools["delete_order"].writes
    with pytest.raises(UserError, match="not both"):
        app.tool(read_only=True, writes=True)
