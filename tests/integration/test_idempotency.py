"""Idempotency-Key on mutating requests through a real server: stored responses replayed,
concurrent duplicates 409, other payloads 422, keys scoped per API key, kept in the database
so another server honours them, and forgotten after their published expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import StewardProcess, free_port, make_process

PROBLEMS = "https://steward.dev/problems/"
SLOW = {"assistant_id": "multistep", "input": {"steps": 1, "sleep_s": 1.5}}
QUICK = {"assistant_id": "multistep", "input": {"steps": 2}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    process = make_process(tmp_path_factory.mktemp("idempotency"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(served: StewardProcess) -> str:
    return served.create_key("idem")


def _post(server: StewardProcess, key: str, path: str, body: object, idem: str) -> httpx.Response:
    headers = {"x-api-key": key, "idempotency-key": idem}
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)


def test_a_retry_after_completion_gets_the_stored_response(
    served: StewardProcess, key: str
) -> None:
    first = _post(served, key, "/runs/wait", QUICK, "retry-1")
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    expires = parsedate_to_datetime(first.headers["idempotency-key-expires"])
    assert 23 * 3600 < expires.timestamp() - time.time() <= 24 * 3600 + 5
    second = _post(served, key, "/runs/wait", QUICK, "retry-1")
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert second.headers["content-location"] == first.headers["content-location"]
    # The agent ran once: two ledger lines (two steps), not four.
    run_id = first.headers["content-location"].rsplit("/", 1)[-1]
    assert len([x for x in served.ledger_lines() if x["run_id"] == run_id]) == 2


def test_error_responses_are_stored_and_replayed_too(served: StewardProcess, key: str) -> None:
    body = {"assistant_id": "no-such-agent", "input": {}}
    first = _post(served, key, "/runs", body, "error-1")
    assert first.status_code == 404
    second = _post(served, key, "/runs", body, "error-1")
    assert second.status_code == 404
    assert second.headers["content-type"] == "application/problem+json"
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()


async def test_a_concurrent_duplicate_gets_409(served: StewardProcess, key: str) -> None:
    headers = {"x-api-key": key, "idempotency-key": "concurrent-1"}
    async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=30) as client:
        first = asyncio.create_task(client.post("/runs/wait", json=SLOW))
        await asyncio.sleep(0.7)  # the first holds the key while its run sleeps
        duplicate = await client.post("/runs/wait", json=SLOW)
        done = await first
    assert done.status_code == 200
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert duplicate.json()["type"] == PROBLEMS + "idempotency-key-in-use"
    assert duplicate.headers["retry-after"] == "1"


def test_the_same_key_with_another_payload_gets_422(served: StewardProcess, key: str) -> None:
    assert _post(served, key, "/runs", QUICK, "payload-1").status_code == 200
    other = _post(served, key, "/runs", {**QUICK, "metadata": {"x": 1}}, "payload-1")
    assert other.status_code == 422
    assert other.json()["type"] == PROBLEMS + "idempotency-key-reused"
    other_path = _post(served, key, "/threads", {}, "payload-1")
    assert other_path.status_code == 422


def test_keys_are_scoped_per_api_key(served: StewardProcess, key: str) -> None:
    other_key = served.create_key("idem-other")
    mine = _post(served, key, "/threads", {}, "scoped-1")
    theirs = _post(served, other_key, "/threads", {}, "scoped-1")
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["thread_id"] != theirs.json()["thread_id"]


def test_malformed_keys_get_400(served: StewardProcess, key: str) -> None:
    for bad in ("x" * 256, "tab\there", ""):
        response = _post(served, key, "/threads", {}, bad)
        assert response.status_code == 400, bad
        assert response.json()["type"] == PROBLEMS + "idempotency-key-invalid"
    quoted = _post(served, key, "/threads", {}, '"sf-string-key"')
    assert quoted.status_code == 200
    assert _post(served, key, "/threads", {}, "sf-string-key").json() == quoted.json()


def test_a_retried_stream_points_at_its_run_instead_of_starting_another(
    served: StewardProcess, key: str
) -> None:
    first = _post(served, key, "/runs/stream", QUICK, "stream-1")
    assert first.status_code == 200
    assert "event: values" in first.text
    retry = _post(served, key, "/runs/stream", QUICK, "stream-1")
    assert retry.status_code == 303
    assert retry.headers["idempotent-replayed"] == "true"
    run_path = first.headers["content-location"]
    # Sent to the run's resumable stream: following it replays that run, starting nothing new.
    assert retry.headers["location"] == first.headers["location"]
    followed = httpx.get(
        f"{served.url}{retry.headers['location']}", headers={"x-api-key": key}, timeout=10
    )
    assert followed.status_code == 200
    assert "event: values" in followed.text
    assert followed.text.split("event: values")[1].startswith('\ndata: {"results": [0, 1]}')
    run = httpx.get(f"{served.url}{run_path}", headers={"x-api-key": key}, timeout=10)
    assert run.json()["status"] == "success"
    runs_started = {line["run_id"] for line in served.ledger_lines()}
    assert run_path.rsplit("/", 1)[-1] in runs_started


def test_requests_without_a_key_are_not_deduplicated(served: StewardProcess, key: str) -> None:
    headers = {"x-api-key": key}
    a = httpx.post(f"{served.url}/threads", json={}, headers=headers)
    b = httpx.post(f"{served.url}/threads", json={}, headers=headers)
    assert a.json()["thread_id"] != b.json()["thread_id"]


def test_another_server_honours_the_key_until_it_expires(tmp_path: Path) -> None:
    first = make_process(tmp_path, STEWARD_IDEMPOTENCY_TTL_S="3")
    second = StewardProcess(home=first.home, port=free_port(), env=first.env)
    try:
        first.start()
        second.start()
        key = first.create_key("two-servers")
        created = _post(first, key, "/threads", {}, "shared-1")
        replayed = _post(second, key, "/threads", {}, "shared-1")
        assert replayed.headers["idempotent-replayed"] == "true"
        assert replayed.json() == created.json()
        # Once expired, the key is free for a new request (even another payload).
        deadline = parsedate_to_datetime(created.headers["idempotency-key-expires"])
        time.sleep(max(0.0, deadline.timestamp() - time.time()) + 1.0)
        fresh = _post(second, key, "/threads", {"metadata": {"n": 2}}, "shared-1")
        assert fresh.status_code == 200
        assert "idempotent-replayed" not in fresh.headers
        assert fresh.json()["thread_id"] != created.json()["thread_id"]
    finally:
        second.stop()
        first.stop()
