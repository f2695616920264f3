"""The local development model: deterministic tool choice, answers from tool results, streaming."""

from __future__ import annotations

import json

from steward.models.local import LocalModel
from steward.models.types import (
    Message,
    ModelProvider,
    ModelRequest,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolDefinition,
)

LOOKUP_ORDER = ToolDefinition(
    "lookup_order",
    "Look up an order's status and delivery date by its id",
    {
        "type": "object",
        "properties": {"order_id": {"type": "integer"}},
        "required": ["order_id"],
    },
)
CREATE_TICKET = ToolDefinition(
    "create_ticket",
    "Open a support ticket",
    {
        "type": "object",
        "properties": {"subject": {"type": "string"}, "body": {"type": "string"}},
        "required": ["subject", "body"],
    },
)
SUPPORT_TOOLS = (LOOKUP_ORDER, CREATE_TICKET)


def ask(text: str, tools: tuple[ToolDefinition, ...] = SUPPORT_TOOLS) -> ModelRequest:
    return ModelRequest(
        model="dev",
        messages=(Message("system", "You are a support agent."), Message("user", text)),
        tools=tools,
    )


async def test_local_model_implements_the_provider_protocol() -> None:
    model = LocalModel()

    assert isinstance(model, ModelProvider)
    assert model.name == "steward.local"
    response = await model.complete(ask("hello"))
    assert (response.provider, response.model) == ("steward.local", "dev")
    await model.aclose()


async def test_order_question_calls_lookup_order_with_the_number_from_the_text() -> None:
    response = await LocalModel().complete(ask("Where is my order 42?"))

    assert len(response.tool_calls) == 1
    call = response.tool_calls[0]
    assert (call.name, call.arguments) == ("lookup_order", {"order_id": 42})
    assert call.id.startswith("call_")
    assert (response.finish_reason, response.content) == ("tool_calls", "")


async def test_answer_from_tool_result_mentions_the_order_and_its_status() -> None:
    model = LocalModel()
    request = ask("Where is my order 42?")
    first = await model.complete(request)
    [call] = first.tool_calls
    result = {"status": "shipped", "delivery_date": "2026-11-20"}

    answer = await model.complete(
        ModelRequest(
            model="dev",
            messages=(
                *request.messages,
                first.message(),
                Message("tool", json.dumps(result), tool_call_id=call.id, name=call.name),
            ),
            tools=SUPPORT_TOOLS,
        )
    )

    assert answer.tool_calls == ()
    assert answer.finish_reason == "stop"
    assert "42" in answer.content
    assert "shipped" in answer.content
    assert "lookup_order" in answer.content
    assert "2026-11-20" in answer.content


async def test_answer_summarises_every_trailing_tool_result_and_tolerates_plain_text() -> None:
    messages = (
        Message("user", "two things"),
        Message("tool", '{"temp_c": 21, "sky": "clear"}', tool_call_id="a", name="get_weather"),
        Message("tool", "no such city", tool_call_id="b", name="get_time"),
    )

    answer = await LocalModel().complete(ModelRequest("dev", messages))

    assert "get_weather" in answer.content
    assert "temp c is 21" in answer.content
    assert "get_time" in answer.content
    assert "no such city" in answer.content


async def test_asking_to_open_a_ticket_calls_create_ticket() -> None:
    text = "Please open a ticket: my parcel arrived damaged"

    response = await LocalModel().complete(ask(text))

    [call] = response.tool_calls
    assert call.name == "create_ticket"
    assert call.arguments == {"subject": text, "body": text}


async def test_quoted_text_fills_string_parameters_in_order() -> None:
    text = 'Create a ticket "Broken parcel" saying "The box was crushed"'

    response = await LocalModel().complete(ask(text))

    assert response.tool_calls[0].arguments == {
        "subject": "Broken parcel",
        "body": "The box was crushed",
    }


async def test_writing_tool_is_not_called_without_a_matching_verb() -> None:
    response = await LocalModel().complete(
        ask("What does a support ticket cost?", (CREATE_TICKET,))
    )

    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert "What does a support ticket cost?" in response.content


async def test_tool_whose_required_parameters_cannot_be_filled_is_skipped() -> None:
    response = await LocalModel().complete(ask("Where is my order?"))

    assert response.tool_calls == ()
    assert "Where is my order?" in response.content


async def test_read_only_tool_wins_a_tie_with_a_permitted_writing_tool() -> None:
    schema = {"type": "object", "properties": {"note_id": {"type": "integer"}}}
    tools = (
        ToolDefinition("delete_note", "Remove a note", schema),
        ToolDefinition("read_note", "Remove nothing, show a note", schema),
    )

    response = await LocalModel().complete(ask("remove note 5", tools))

    assert response.tool_calls[0].name == "read_note"
    assert response.tool_calls[0].arguments == {"note_id": 5}


async def test_no_fitting_tool_gives_a_short_echo() -> None:
    response = await LocalModel().complete(ask("Tell me a joke about penguins"))

    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert "Tell me a joke about penguins" in response.content


async def test_tool_choice_none_never_calls_a_tool() -> None:
    request = ModelRequest(
        "dev", (Message("user", "Where is my order 42?"),), SUPPORT_TOOLS, tool_choice="none"
    )

    response = await LocalModel().complete(request)

    assert response.tool_calls == ()


async def test_same_request_gets_the_same_response_ids_included() -> None:
    first = await LocalModel().complete(ask("Where is my order 42?"))
    second = await LocalModel().complete(ask("Where is my order 42?"))
    other = await LocalModel().complete(ask("Where is my order 43?"))

    assert first == second
    assert first.tool_calls[0].id != other.tool_calls[0].id


async def test_usage_counts_words_deterministically() -> None:
    response = await LocalModel().complete(ask("Tell me a joke"))

    assert response.usage.input_tokens > 4  # the user's four words plus the system prompt
    assert response.usage.output_tokens == len(response.content.split())
    assert response.usage.estimated is False


async def test_max_tokens_cuts_the_answer_and_finishes_with_length() -> None:
    request = ModelRequest("dev", (Message("user", "Tell me a joke about penguins"),), max_tokens=3)

    response = await LocalModel().complete(request)

    assert len(response.content.split()) == 3
    assert response.finish_reason == "length"


async def collect(request: ModelRequest) -> list[StreamEvent]:
    return [event async for event in LocalModel().stream(request)]


async def test_stream_yields_words_then_the_same_response_as_complete() -> None:
    request = ask("Tell me a joke about penguins")

    events = await collect(request)

    *deltas, done = events
    assert isinstance(done, StreamDone)
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert len(deltas) == len(done.response.content.split())
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == done.response.content
    assert done.response.time_to_first_chunk_s is not None
    expected = await LocalModel().complete(request)
    assert (done.response.content, done.response.usage) == (expected.content, expected.usage)


async def test_stream_emits_tool_call_deltas_for_tool_calls() -> None:
    events = await collect(ask("Where is my order 42?"))

    *deltas, done = events
    assert isinstance(done, StreamDone)
    [delta] = deltas
    assert isinstance(delta, ToolCallDelta)
    assert (delta.index, delta.name) == (0, "lookup_order")
    assert json.loads(delta.arguments_fragment) == {"order_id": 42}
    assert delta.id == done.response.tool_calls[0].id
