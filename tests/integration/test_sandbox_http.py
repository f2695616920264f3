"""`/v1/sandboxes` through a real `steward dev` server: lifecycle, streaming, files, tenants,
hostile paths and malformed input; and `ctx.sandbox()` + `run_code` inside a real run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import StewardProcess

PROBLEM = "https://steward.dev/problems/"
TRAVERSALS = ["../secret", "a/../../etc/passwd", "/etc/passwd", "..", "nul\0byte", "link/passwd"]


def assert_problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM + kind, response.text


@pytest.fixture(scope="module")
def http(server: StewardProcess, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"x-api-key": api_key}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def intruder(server: StewardProcess) -> Iterator[httpx.Client]:
    key = server.create_key("intruder", tenant="intruder")
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=60) as client:
        yield client


@pytest.fixture
def sandbox(http: httpx.Client) -> Iterator[dict[str, Any]]:
    created = http.post("/v1/sandboxes", json={"limits": {"memory_mib": 128}, "env": {"K": "v"}})
    if created.status_code == 503 and "unavailable" in created.text:
        # A missing backend fails loudly: a skipped sandbox test looks green while nothing ran.
        pytest.fail(f"no sandbox backend on this machine: {created.json()['detail']}")
    assert created.status_code == 201, created.text
    yield created.json()
    http.delete(f"/v1/sandboxes/{created.json()['id']}")


def test_exec_returns_exit_code_output_and_times(
    http: httpx.Client, sandbox: dict[str, Any]
) -> None:
    url = f"/v1/sandboxes/{sandbox['id']}/exec"
    done = http.post(url, json={"code": "import os, sys; print(os.environ['K']); sys.exit(3)"})
    body = done.json()
    assert done.status_code == 200 and body["exit_code"] == 3 and body["stdout"] == "v\n"
    assert body["wall_s"] > 0 and body["cpu_s"] >= 0 and not body["timed_out"]
    shell = http.post(url, json={"command": "echo $((6*7)) >&2"}).json()
    assert shell["stderr"] == "42\n"


def test_exec_streams_output_as_server_sent_events(
    http: httpx.Client, sandbox: dict[str, Any]
) -> None:
    code = "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.2)"
    url = f"/v1/sandboxes/{sandbox['id']}/exec"
    events: list[tuple[str, dict[str, Any]]] = []
    with http.stream("POST", url, json={"code": code, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    assert [data["data"] for name, data in events if name == "stdout"] == ["0\n", "1\n", "2\n"]
    assert events[-1][0] == "result" and events[-1][1]["exit_code"] == 0


def test_files_are_written_read_and_listed(http: httpx.Client, sandbox: dict[str, Any]) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}"
    put = http.put(
        f"{base}/files/content",
        params={"path": "dir/a.txt"},
        json={"content": "cGF5bG9hZA==", "encoding": "base64"},
    )
    assert put.status_code == 204, put.text
    assert http.get(f"{base}/files/content", params={"path": "dir/a.txt"}).content == b"payload"
    done = http.post(f"{base}/exec", json={"command": "cat dir/a.txt"}).json()
    assert done["stdout"] == "payload"
    listing = http.get(f"{base}/files", params={"path": "dir"}).json()["files"]
    assert listing == [{"path": "dir/a.txt", "kind": "file", "size": 7}]


NOT_BASE64 = ["cGF5bG9hZA==\u00e9", "\u00fc\u00fc\u00fc\u00fc", "\U0001f4a5==", "a b", "abc"]


@pytest.mark.parametrize("content", NOT_BASE64)
def test_file_content_that_is_not_base64_is_a_422_for_any_sandbox(
    http: httpx.Client, sandbox: dict[str, Any], content: str
) -> None:
    for sandbox_id in (sandbox["id"], "sbx_does_not_exist"):
        put = http.put(
            f"/v1/sandboxes/{sandbox_id}/files/content",
            params={"path": "a.txt"},
            json={"content": content, "encoding": "base64"},
        )
        assert_problem(put, 422, "validation-error")
        assert "not base64" in json.dumps(put.json()["errors"])
    listing = http.get(f"/v1/sandboxes/{sandbox['id']}/files", params={"path": ""}).json()
    assert listing["files"] == []


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(http: httpx.Client, sandbox: dict[str, Any], path: str) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}"
    http.post(f"{base}/exec", json={"command": "ln -sf /etc link"})
    read = http.get(f"{base}/files/content", params={"path": path})
    assert_problem(read, 400, "sandbox-path-refused")
    write = http.put(f"{base}/files/content", params={"path": path}, json={"content": "x"})
    assert_problem(write, 400, "sandbox-path-refused")


def test_another_tenant_gets_404_everywhere(
    http: httpx.Client, intruder: httpx.Client, sandbox: dict[str, Any]
) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}"
    for response in (
        intruder.get(base),
        intruder.post(f"{base}/exec", json={"command": "id"}),
        intruder.post(f"{base}/exec", json={"command": "id", "stream": True}),
        intruder.get(f"{base}/files", params={"path": ""}),
        intruder.get(f"{base}/files/content", params={"path": "x"}),
        intruder.put(f"{base}/files/content", params={"path": "x"}, json={"content": "x"}),
        intruder.post(f"{base}/standby", json={}),
        intruder.post(f"{base}/resume"),
        intruder.delete(base),
    ):
        assert_problem(response, 404, "not-found")
    assert sandbox["id"] not in [s["id"] for s in intruder.get("/v1/sandboxes").json()["sandboxes"]]
    assert http.get(base).json()["state"] == "running"


def test_standby_resume_and_delete(http: httpx.Client, sandbox: dict[str, Any]) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}"
    http.post(f"{base}/exec", json={"command": "echo 1 > n"})
    assert http.post(f"{base}/standby", json={}).json()["state"] == "standby"
    assert http.post(f"{base}/exec", json={"command": "cat n"}).json()["stdout"] == "1\n"
    assert http.get(base).json()["state"] == "running"
    assert http.post(f"{base}/standby", json={"mode": "warm"}).status_code == 200
    assert http.post(f"{base}/resume").json()["state"] == "running"
    assert http.delete(base).status_code == 204
    assert http.get(base).json()["state"] == "deleted"
    assert_problem(http.post(f"{base}/exec", json={"command": "id"}), 409, "sandbox-state")


def test_unauthenticated_and_malformed_requests_get_precise_problems(
    server: StewardProcess, http: httpx.Client, sandbox: dict[str, Any]
) -> None:
    assert_problem(httpx.post(f"{server.url}/v1/sandboxes", json={}), 401, "unauthenticated")
    raw = http.post("/v1/sandboxes", content=b"{nope", headers={"content-type": "application/json"})
    assert_problem(raw, 400, "malformed-json")
    assert_problem(
        http.post("/v1/sandboxes", json={"limits": {"pids": 10**9}}), 422, "validation-error"
    )
    assert_problem(http.post("/v1/sandboxes", json={"surprise": 1}), 422, "validation-error")
    assert_problem(http.post("/v1/sandboxes", json={"volumes": ["../x"]}), 422, "invalid-request")
    base = f"/v1/sandboxes/{sandbox['id']}"
    assert_problem(http.post(f"{base}/exec", json={}), 422, "invalid-request")
    both = http.post(f"{base}/exec", json={"command": "id", "code": "1"})
    assert_problem(both, 422, "invalid-request")
    assert_problem(http.post(f"{base}/exec", json={"command": []}), 422, "invalid-request")
    assert_problem(
        http.post(f"{base}/exec", json={"command": "id", "cwd": "rel"}), 422, "validation-error"
    )
    assert_problem(http.get("/v1/sandboxes/sbx_missing"), 404, "not-found")


def test_agent_uses_ctx_sandbox_and_run_code_as_journaled_steps(http: httpx.Client) -> None:
    answered = http.post(
        "/runs/wait", json={"assistant_id": "sandboxed", "input": {"code": "print(6 * 7)"}}
    )
    assert answered.status_code == 200, answered.text
    output = answered.json()
    assert output["doubled"] == "42" and output["state"] == "kept"
    assert output["tool"]["exit_code"] == 0 and output["tool"]["stdout"] == "42\n"
    assert output["again"]["stdout"] == "False\n"
