"""The local-llm provider's model string, reply schema and reply parsing (no weights needed)."""

from __future__ import annotations

import pytest

from steward.errors import ModelError, UnknownModel
from steward.models.local_llm import LocalLLM, _parse, reply_schema
from steward.models.resolve import ModelSpec, build_provider, parse_model_string
from steward.models.types import ToolDefinition

LOOKUP = ToolDefinition(
    "lookup_order",
    "Look up an order.",
    {"type": "object", "title": "args", "properties": {"order_id": {"type": "integer"}}},
)
TICKET = ToolDefinition(
    "create_ticket",
    "Open a ticket.",
    {"type": "object", "properties": {"subject": {"type": "string"}, "body": {"type": "string"}}},
)


@pytest.mark.parametrize("text", ["local-llm", "local-llm:smollm2-135m", " Local-LLM "])
def test_local_llm_model_strings_build_the_local_llm_provider(text: str) -> None:
    assert parse_model_string(text) == ModelSpec("local-llm", "smollm2-135m")
    assert isinstance(build_provider(text, env={}), LocalLLM)


def test_another_local_llm_model_name_is_refused_with_the_accepted_forms() -> None:
    with pytest.raises(UnknownModel, match="local-llm model is called 'smollm2-135m'"):
        parse_model_string("local-llm:llama-70b")


def test_the_reply_schema_offers_each_tool_with_all_its_arguments_or_an_answer() -> None:
    schema = reply_schema((LOOKUP, TICKET))
    tools = [option["properties"].get("tool") for option in schema["anyOf"]]
    assert tools == [{"const": "lookup_order"}, {"const": "create_ticket"}, None]
    ticket_arguments = schema["anyOf"][1]["properties"]["arguments"]
    assert ticket_arguments["required"] == ["subject", "body"]
    assert ticket_arguments["additionalProperties"] is False
    assert "title" not in schema["anyOf"][0]["properties"]["arguments"]
    assert schema["anyOf"][2]["required"] == ["answer"]


def test_a_required_tool_choice_leaves_no_answer_option() -> None:
    schema = reply_schema((LOOKUP,), answer=False)
    assert schema["properties"]["tool"] == {"const": "lookup_order"}


def test_replies_parse_to_a_tool_call_or_an_answer() -> None:
    content, calls = _parse('{"tool": "lookup_order", "arguments": {"order_id": 42}}', (LOOKUP,))
    assert content == "" and [(c.name, c.arguments) for c in calls] == [
        ("lookup_order", {"order_id": 42})
    ]
    assert calls[0].id.startswith("call_")
    assert _parse('{"answer": "It shipped."}', (LOOKUP,)) == ("It shipped.", ())
    with pytest.raises(ModelError, match="cut before its JSON ended"):
        _parse('{"answer": "It shi', (LOOKUP,))
