"""The test upstream's provider batch APIs, driven by the official `openai` and `anthropic`
SDKs over real HTTP: OpenAI's Batch API (file upload, batch, poll, output file) and Anthropic's
Message Batches (create, poll, results), each answering from the script in order."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from steward.upstream.testing import UpstreamControl, run_upstream_in_thread


@pytest.fixture
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


def test_openai_batch_api_round_trip(upstream: str) -> None:
    UpstreamControl(upstream).script({"text": "first"}, {"text": "second"})
    client = openai.OpenAI(base_url=f"{upstream}/v1", api_key="sk-test")
    lines = [
        {
            "custom_id": f"item-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
        }
        for i in range(3)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data)
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "in_progress" and batch.request_counts.total == 3
    deadline = time.monotonic() + 30
    while batch.status != "completed":
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    assert batch.request_counts.completed == 3 and batch.output_file_id
    output = client.files.content(batch.output_file_id).text.splitlines()
    answers = [json.loads(line) for line in output]
    assert [a["custom_id"] for a in answers] == ["item-0", "item-1", "item-2"]
    texts = [a["response"]["body"]["choices"][0]["message"]["content"] for a in answers]
    assert texts == ["first", "second", "Echo: q2"]
    assert all(a["response"]["body"]["usage"]["total_tokens"] > 0 for a in answers)
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


def test_anthropic_message_batches_round_trip(upstream: str) -> None:
    UpstreamControl(upstream).script({"text": "one"})
    client = anthropic.Anthropic(base_url=upstream, api_key="sk-ant-test")
    requests = [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"hello {i}"}],
            },
        }
        for i in range(2)
    ]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 2
    deadline = time.monotonic() + 30
    while batch.processing_status != "ended":
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
        batch = client.messages.batches.retrieve(batch.id)
    assert batch.request_counts.succeeded == 2
    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == ["r0", "r1"]
    texts = []
    for r in results:
        assert r.result.type == "succeeded"
        block = r.result.message.content[0]
        assert block.type == "text"
        texts.append(block.text)
    assert texts == ["one", "Echo: hello 1"]
    cancelled = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    client.messages.batches.cancel(cancelled.id)
    deadline = time.monotonic() + 30
    while cancelled.processing_status != "ended":
        assert time.monotonic() < deadline, cancelled
        time.sleep(0.05)
        cancelled = client.messages.batches.retrieve(cancelled.id)
    assert cancelled.request_counts.canceled == 2
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_missing")
