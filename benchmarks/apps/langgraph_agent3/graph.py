"""The agent of `benchmarks/apps/agent3_app.py` as a LangGraph graph: model → tool → model.

No real model: the "model" nodes follow fixed rules, like Steward's local model, so the peer
server's own cost is what `benchmarks/compare_langgraph.py` measures.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

_ORDERS = {42: {"status": "shipped", "carrier": "DHL"}}


class State(TypedDict, total=False):
    message: str
    tool_call: dict[str, Any]
    tool_result: dict[str, Any]
    answer: str
    tools_used: list[str]


def plan(state: State) -> State:
    """The first model step: pick the tool and fill its argument from the text."""
    numbers = re.findall(r"\d+", state["message"])
    return {"tool_call": {"name": "lookup_order", "order_id": int(numbers[0]) if numbers else 0}}


def lookup_order(state: State) -> State:
    order_id = state["tool_call"]["order_id"]
    return {"tool_result": {"order_id": order_id, **_ORDERS.get(order_id, {"found": False})}}


def answer(state: State) -> State:
    """The second model step: restate the tool's result."""
    facts = ", ".join(f"{key} is {value}" for key, value in state["tool_result"].items())
    return {"answer": f"According to lookup_order: {facts}.", "tools_used": ["lookup_order"]}


builder = StateGraph(State)
builder.add_node("plan", plan)
builder.add_node("lookup_order", lookup_order)
builder.add_node("answer", answer)
builder.add_edge(START, "plan")
builder.add_edge("plan", "lookup_order")
builder.add_edge("lookup_order", "answer")
builder.add_edge("answer", END)
graph = builder.compile()
