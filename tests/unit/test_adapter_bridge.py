"""The adapters' shared pieces: chat messages to Steward messages, run errors unwrapped."""

from __future__ import annotations

from steward.adapters._bridge import steward_error_in
from steward.adapters.messages import from_chat_messages
from steward.errors import PolicyBlocked, SpendCapExceeded
from steward.models.types import Message, ToolCall


def test_chat_messages_become_steward_messages_with_their_tool_calls() -> None:
    messages = from_chat_messages(
        [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Where is"}, "order 42?"]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "lookup", "arguments": '{"id": 42}'}},
                    {"id": "c2", "function": {"name": "broken", "arguments": "{not json"}},
                ],
            },
            {"role": "tool", "content": '{"found": true}', "tool_call_id": "c1"},
        ]
    )
    assert messages == [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Where is\norder 42?"),
        Message(
            role="assistant",
            tool_calls=(
                ToolCall("c1", "lookup", {"id": 42}),
                ToolCall("c2", "broken", {"_raw": "{not json"}),
            ),
        ),
        Message(role="tool", content='{"found": true}', tool_call_id="c1"),
    ]


def test_a_run_ending_error_is_found_inside_a_frameworks_wrapper_but_a_tool_error_is_not() -> None:
    cap = SpendCapExceeded("user_daily")
    wrapped = RuntimeError("Error running tool")
    wrapped.__cause__ = cap
    assert steward_error_in(wrapped) is cap
    # Without a cause, the exception being handled when it was raised counts.
    implicit = ValueError("while handling")
    implicit.__context__ = wrapped
    assert steward_error_in(implicit) is cap
    assert steward_error_in(RuntimeError("plain")) is None
    assert steward_error_in(PolicyBlocked("refused")) is None
