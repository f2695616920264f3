"""Redis mode through real processes: stream events fan out from a `steward worker` to the
`steward serve` holding the client's stream, and a Redis stopped mid-load costs no crash and
no run: rate limiting fails open or closed as configured, streams fall back to the database."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import APPS, ROOT, STEWARD, StewardProcess, free_port, make_process
from tests.redis_server import SHARED_REDIS_URL, PrivateRedis, drop_prefix, unique_prefix

RUN = {"assistant_id": "multistep", "input": {"steps": 3}, "stream_mode": ["updates", "values"]}


def _events(text: str) -> list[str]:
    return [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("event:")
    ]


@pytest.fixture
def serve_and_worker(tmp_path: Path) -> Iterator[StewardProcess]:
    prefix = unique_prefix()
    process = make_process(
        tmp_path, STEWARD_REDIS_URL=SHARED_REDIS_URL, STEWARD_REDIS_PREFIX=prefix
    )
    logs = [(tmp_path / name).open("wb") for name in ("worker.log", "serve.log")]
    procs = [
        subprocess.Popen(
            [STEWARD, *command, *APPS],
            cwd=ROOT,
            env=process.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for command, log in (
            (["worker"], logs[0]),
            (["serve", "--port", str(process.port)], logs[1]),
        )
    ]
    try:
        for _ in range(300):
            try:
                httpx.get(f"{process.url}/readyz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert all(p.poll() is None for p in procs), (tmp_path / "serve.log").read_text()
                subprocess.run(["sleep", "0.1"], check=True)
        yield process
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)
        for log in logs:
            log.close()
        asyncio.run(drop_prefix(SHARED_REDIS_URL, prefix))


def test_a_workers_events_reach_the_api_servers_stream_through_redis(
    serve_and_worker: StewardProcess,
) -> None:
    key = serve_and_worker.create_key("fan-out")
    response = httpx.post(
        f"{serve_and_worker.url}/runs/stream", json=RUN, headers={"x-api-key": key}, timeout=60
    )
    assert response.status_code == 200
    events = _events(response.text)
    # Step updates exist only in the worker's hot state: seeing them here means fan-out worked
    # (without Redis, `serve` only learns the final values from the database).
    assert events.count("updates") >= 3, events
    assert response.text.count('"name": "record_step"') == 3  # one update per tool step
    assert events[0] == "metadata" and events[-1] == "values"
    pids = {line["pid"] for line in serve_and_worker.ledger_lines()}
    assert len(pids) == 1  # executed by the worker, not by the API server


def test_a_cancel_through_the_api_server_stops_the_workers_run_mid_step(
    serve_and_worker: StewardProcess,
) -> None:
    """The cancel signal crosses Redis: the worker interrupts the step in flight instead of
    finishing its minute-long sleep and stopping at the next step boundary."""
    key = serve_and_worker.create_key("cancel")
    headers = {"x-api-key": key}
    url = serve_and_worker.url
    thread = httpx.post(f"{url}/threads", json={}, headers=headers).json()["thread_id"]
    body = {"assistant_id": "multistep", "input": {"steps": 2, "sleep_s": 60}}
    run_id = httpx.post(f"{url}/threads/{thread}/runs", json=body, headers=headers).json()["run_id"]
    _until(lambda: any(line["run_id"] == run_id for line in serve_and_worker.ledger_lines()))
    cancel = httpx.post(f"{url}/threads/{thread}/runs/{run_id}/cancel", headers=headers)
    assert cancel.status_code == 202

    # The worker's agent span closes only once its task stops: well before the step's 60 s.
    def agent_span_closed() -> bool:
        spans = httpx.get(f"{url}/runs/{run_id}/trace", headers=headers).json()["spans"]
        return any(span["name"].startswith("invoke_agent") for span in spans)

    _until(agent_span_closed, timeout_s=40)
    assert httpx.get(f"{url}/runs/{run_id}", headers=headers).json()["status"] == "interrupted"
    assert len([x for x in serve_and_worker.ledger_lines() if x["run_id"] == run_id]) == 1


class Load:
    """Four clients sending runs (wait and stream, alternately) until stopped."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.statuses: Counter[int] = Counter()
        self.run_ids: list[str] = []
        self.stream_endings: Counter[str] = Counter()
        self.updates_seen = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(4)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self, n: int) -> None:
        headers = {"x-api-key": self.key}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            count = 0
            while not self._stop.is_set():
                path = "/runs/stream" if (n + count) % 2 else "/runs/wait"
                count += 1
                response = client.post(path, json=RUN)
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.run_ids.append(response.headers["content-location"].rsplit("/", 1)[-1])
                    if path == "/runs/stream":
                        events = _events(response.text)
                        self.stream_endings[events[-1]] += 1
                        self.updates_seen += events.count("updates")


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_redis_stopped_mid_load_costs_no_crash_and_no_run(tmp_path: Path, fail_open: bool) -> None:
    redis_server = PrivateRedis(tmp_path, free_port())
    redis_server.start()
    process = make_process(
        tmp_path,
        STEWARD_REDIS_URL=redis_server.url,
        STEWARD_RATE_LIMIT_FAIL_OPEN=str(fail_open).lower(),
    )
    process.start()
    try:
        key = process.create_key("outage")
        with Load(process.url, key) as before:
            _until(lambda: before.statuses[200] >= 8)
        assert set(before.statuses) == {200}

        redis_server.stop()
        with Load(process.url, key) as during:
            _until(lambda: sum(during.statuses.values()) >= 8)
        if fail_open:
            assert set(during.statuses) == {200}, during.statuses
            assert during.stream_endings and set(during.stream_endings) == {"values"}
        else:
            assert set(during.statuses) == {503}, during.statuses
            refused = httpx.post(f"{process.url}/runs", json=RUN, headers={"x-api-key": key})
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"] == "https://steward.dev/problems/rate-limiter-unavailable"
            assert refused.headers["retry-after"] == "1"
        assert httpx.get(f"{process.url}/healthz").status_code == 200
        assert process.proc is not None and process.proc.poll() is None

        redis_server.start()
        with Load(process.url, key) as after:
            _until(lambda: after.statuses[200] >= 8)
        assert set(after.statuses) == {200}
        assert set(after.stream_endings) == {"values"}
        assert after.updates_seen > 0  # live events flow through Redis again
        assert process.proc.poll() is None

        # Every accepted run finished, whichever side of the outage it fell on.
        accepted = before.run_ids + during.run_ids + after.run_ids
        headers = {"x-api-key": key}
        statuses = {
            httpx.get(f"{process.url}/runs/{run_id}", headers=headers).json()["status"]
            for run_id in accepted
        }
        assert statuses == {"success"}
        per_run = Counter(line["run_id"] for line in process.ledger_lines())
        assert {per_run[run_id] for run_id in accepted} == {3}
    finally:
        process.stop()
        redis_server.stop()


def _until(condition: Callable[[], bool], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "load made no progress"
        time.sleep(0.05)
