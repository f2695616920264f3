"""`steward deploy` while runs of the old version are in flight: each run records the version it
started on and finishes on it, new runs take the newly promoted version, none is lost. The
server serves a third copy of the code (`v0`), so every answer proves which stored version ran."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, STEWARD, StewardProcess, make_process

APP = """
from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from steward import Context, Steward

SYSTEM_PROMPT = "You answer with the version: {version}"
VERSION = "{version}"


class Hold(BaseModel):
    release: str  # the run ends once this file exists


class Done(BaseModel):
    answer: str


app = Steward()


@app.agent(name="flow", max_steps={steps})
async def flow(ctx: Context, input: Hold) -> Done:
    while not Path(input.release).exists():
        await asyncio.sleep(0.02)
    return Done(answer=VERSION)
"""


def write_app(folder: Path, version: str, steps: int = 5) -> Path:
    path = folder / f"flow_{version}.py"
    path.write_text(APP.format(version=version, steps=steps))
    return path


def steward(process: StewardProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STEWARD, *args],
        cwd=ROOT,
        env={**process.env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_serving(process: StewardProcess, app: Path) -> None:
    with process.log.open("ab") as log:
        process.proc = subprocess.Popen(
            [STEWARD, "dev", str(app), "--port", str(process.port)],
            cwd=ROOT,
            env=process.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process._wait_ready()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[StewardProcess, httpx.Client]]:
    process = make_process(tmp_path)
    start_serving(process, write_app(tmp_path, "v0"))
    key = process.create_key("deploy")
    with httpx.Client(base_url=process.url, headers={"x-api-key": key}, timeout=30) as client:
        yield process, client
    process.stop()


def start(client: httpx.Client, release: Path, **extra: Any) -> dict[str, Any]:
    body = {"assistant_id": "flow", "input": {"release": str(release)}, **extra}
    answer = client.post("/runs", json=body)
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def until(client: httpx.Client, run_id: str, statuses: set[str]) -> dict[str, Any]:
    while True:
        run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        time.sleep(0.02)


def test_runs_in_flight_finish_on_their_version_while_new_runs_take_the_new_one(
    served: tuple[StewardProcess, httpx.Client], tmp_path: Path
) -> None:
    process, client = served
    first_release, second_release = tmp_path / "release-1", tmp_path / "release-2"

    # Before any deploy the process's own code serves the agent.
    before = start(client, first_release)
    assert "steward.agent_version" not in before["metadata"]

    deployed = steward(process, "deploy", "--app", str(write_app(tmp_path, "v1")))
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed version 1" in deployed.stdout
    promoted = steward(
        process, "rollout", "promote", "flow", "1", "--force", "--reason", "first version"
    )
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr

    old = [start(client, first_release) for _ in range(4)]
    for run in old:
        assert run["metadata"]["steward.agent_version"] == 1
        until(client, run["run_id"], {"running"})

    # v2 changes the code and a cap; deploying the same file again is no new version.
    v2 = write_app(tmp_path, "v2", steps=7)
    assert steward(process, "deploy", "--app", str(v2)).returncode == 0
    again = steward(process, "deploy", "--app", str(v2))
    assert "unchanged, still version 2" in again.stdout
    assert (
        steward(process, "rollout", "promote", "flow", "2", "--force", "--reason", "r").returncode
        == 0
    )

    new = [start(client, second_release) for _ in range(4)]
    assert [run["metadata"]["steward.agent_version"] for run in new] == [2, 2, 2, 2]
    # A caller may pin a deployed version (an eval of a candidate, say), not an unknown one.
    pinned = start(client, second_release, metadata={"steward.agent_version": 1})
    unknown = client.post(
        "/runs",
        json={
            "assistant_id": "flow",
            "input": {"release": str(second_release)},
            "metadata": {"steward.agent_version": 9},
        },
    )
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")

    second_release.touch()
    for run in new:
        assert until(client, run["run_id"], {"success", "error"})["output"] == {"answer": "v2"}
    assert until(client, pinned["run_id"], {"success", "error"})["output"] == {"answer": "v1"}
    # The old runs are still waiting, on version 1, while version 2 serves.
    assert {client.get(f"/runs/{r['run_id']}").json()["status"] for r in old} == {"running"}

    first_release.touch()
    finished = [until(client, r["run_id"], {"success", "error"}) for r in [*old, before]]
    assert [r["output"] for r in finished] == [{"answer": "v1"}] * 4 + [{"answer": "v0"}]
    assert [r["metadata"].get("steward.agent_version") for r in finished] == [1, 1, 1, 1, None]

    # The assistants API lists the deployed versions as the agent's assistant versions.
    versions = client.post("/assistants/flow/versions", json={}).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["metadata"]["stable"] is True
    assert versions[0]["metadata"]["limits"]["max_steps"] == 7
    assert versions[1]["metadata"]["limits"]["max_steps"] == 5

    # Rollback returns new runs to the version stable before, once; it is audited.
    back = steward(process, "rollout", "rollback", "flow", "--reason", "p95 regressed")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "rolled back from version 2 to version 1" in back.stdout
    after = start(client, first_release)
    assert after["metadata"]["steward.agent_version"] == 1
    assert until(client, after["run_id"], {"success", "error"})["output"] == {"answer": "v1"}
    again = steward(process, "rollout", "rollback", "flow")
    assert again.returncode == 1 and "no earlier stable version" in again.stdout
    exported = json.loads(steward(process, "audit", "export").stdout)["records"]
    rolled = [
        json.loads(r["entry"])["data"] for r in exported if r["kind"] == "rollout.rolled_back"
    ]
    assert [(e["from"], e["to"], e["reason"]) for e in rolled] == [(2, 1, "p95 regressed")]
