"""`ctx.memory` inside real runs of a real `steward dev`: three layers per end user, scrubbing,
and erasure by end user seen through the HTTP store API."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, STEWARD, StewardProcess, make_process

APPS = [str(ROOT / "tests" / "apps" / "memory_app.py")]


class MemoryServer(StewardProcess):
    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [STEWARD, "dev", *APPS, "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemoryServer]:
    base = make_process(tmp_path_factory.mktemp("memory-agent"))
    process = MemoryServer(home=base.home, port=base.port, env=base.env)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(server: MemoryServer) -> str:
    return server.create_key("memory")


def run(server: MemoryServer, key: str, user: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/runs/wait",
        json={"assistant_id": "recaller", "input": body},
        headers={"x-api-key": key, "x-steward-user": user},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    output: dict[str, Any] = response.json()
    return output


def test_an_agent_remembers_recalls_and_erases_an_end_user(server: MemoryServer, key: str) -> None:
    first = run(server, key, "ann", {"fact": "Ann's locker code is 4471, mail ann@corp.example"})
    assert first["visits"] == 1 and first["profile"] == {"name": "ann"}
    run(server, key, "bob", {"fact": "Bob keeps his bike in the basement"})
    second = run(server, key, "ann", {"question": "what is the locker code?"})
    assert second["visits"] == 2
    assert second["recalled"] == ["Ann's locker code is 4471, mail [REDACTED:email]"]

    # The memories are items of the LangGraph store, searchable by meaning over HTTP.
    search = httpx.post(
        f"{server.url}/store/items/search",
        json={"namespace_prefix": ["facts"], "query": "bicycle storage", "limit": 2},
        headers={"x-api-key": key},
    ).json()["items"]
    assert search[0]["namespace"] == ["facts", "bob"] and search[0]["score"] is not None

    # Two durable items (profile, memory) and the visits counter; the index entry goes too.
    assert run(server, key, "ann", {"erase_me": True})["erased"] == 3
    after = run(server, key, "ann", {"question": "what is the locker code?"})
    assert after["recalled"] == ["Bob keeps his bike in the basement"]  # only Bob's is left
    assert after["visits"] == 1  # the counter started again
    left = httpx.post(
        f"{server.url}/store/items/search",
        json={"namespace_prefix": ["facts"], "limit": 10},
        headers={"x-api-key": key},
    ).json()["items"]
    assert [i["namespace"] for i in left] == [["facts", "bob"]]


def test_home_holds_the_sqlite_memory_index(server: MemoryServer) -> None:
    assert any(p.name.endswith(".memory-index") for p in Path(server.home).rglob("*"))
