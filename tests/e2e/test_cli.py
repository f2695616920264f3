"""The `steward` command line as a user runs it: dev from the repo root, keys, runs."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, STEWARD, StewardProcess, free_port, make_process

_CELL_SEPARATORS = re.compile("[┃│]")


def table_rows(printed: str) -> list[dict[str, str]]:
    """The rows of a table the CLI printed, each a mapping from column header to cell text."""
    lines = [line for line in printed.splitlines() if _CELL_SEPARATORS.match(line.strip())]
    assert lines, f"no table in {printed!r}"
    split = [
        [cell.strip() for cell in _CELL_SEPARATORS.split(line.strip())[1:-1]] for line in lines
    ]
    header, rows = split[0], split[1:]
    assert all(len(row) == len(header) for row in rows), split
    return [dict(zip(header, row, strict=True)) for row in rows]


def wide_cli(process: StewardProcess, *args: str) -> str:
    """Run the CLI with a terminal wide enough that no cell is wrapped or cut."""
    process.env["COLUMNS"] = "300"
    return process.cli(*args)


def test_dev_from_repo_root_serves_the_example_agents_from_steward_toml(tmp_path: Path) -> None:
    process = make_process(tmp_path)
    port = free_port()
    with (tmp_path / "dev.log").open("wb") as log:
        proc = subprocess.Popen(
            [STEWARD, "dev", "--port", str(port)],
            cwd=ROOT,
            env=process.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        process.port = port
        process.proc = proc
        ready = None
        for _ in range(300):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "dev.log").read_text()) from None
                subprocess.run(["sleep", "0.1"], check=True)
        assert ready is not None and ready.json()["agents"] == ["research", "support"]
        assert (tmp_path / "home" / "steward.db").exists()
    finally:
        process.stop()


def test_keys_create_prints_the_secret_last_and_list_never_shows_it(
    fresh_server: StewardProcess,
) -> None:
    secret = fresh_server.create_key("alice", role="developer")
    assert re.fullmatch(r"stw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", secret)
    listing = wide_cli(fresh_server, "keys", "list")
    assert secret not in listing and secret.split("_", 2)[-1] not in listing  # the secret part
    (row,) = [row for row in table_rows(listing) if row["name"] == "alice"]
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", row["id"]), row
    assert row["tenant"] == "default" and row["role"] == "developer" and row["revoked"] == ""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", row["created"]), row


def test_revoked_key_is_refused(fresh_server: StewardProcess) -> None:
    # The server trusts a key it authenticated for key_cache_ttl_s; a revocation from another
    # process (this CLI) takes effect within it.
    fresh_server.env["STEWARD_KEY_CACHE_TTL_S"] = "1"
    fresh_server.start()
    created = fresh_server.cli("keys", "create", "--name", "bob")
    secret = created.strip().splitlines()[-1]
    key_id = re.search(r"created key (\S+)", created)
    assert key_id is not None and key_id.group(1) in fresh_server.cli("keys", "list")
    url = f"{fresh_server.url}/threads/x"
    assert httpx.get(url, headers={"x-api-key": secret}).status_code == 404
    fresh_server.cli("keys", "revoke", key_id.group(1))
    time.sleep(1.2)
    response = httpx.get(f"{fresh_server.url}/threads/x", headers={"x-api-key": secret})
    assert response.status_code == 401


def test_runs_list_and_show_summarise_a_finished_run(fresh_server: StewardProcess) -> None:
    fresh_server.start()
    headers = {"x-api-key": fresh_server.create_key()}
    result = httpx.post(
        f"{fresh_server.url}/runs/wait",
        headers=headers,
        timeout=30,
        json={"assistant_id": "support", "input": {"message": "Where is my order 42?"}},
    )
    run_id = result.headers["content-location"].rsplit("/", 1)[-1]
    (row,) = table_rows(wide_cli(fresh_server, "runs", "list"))
    assert row["run"] == run_id and row["agent"] == "support", row
    assert row["status"] == "success" and row["reason"] == "completed" and row["steps"] == "3"
    assert re.fullmatch(r"\d+/\d+", row["tokens"]) and re.fullmatch(r"\d+\.\d{6}", row["cost $"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row["created"]), row
    shown = fresh_server.cli("runs", "show", run_id)
    assert "status   success (completed)" in shown
    assert "steps    3" in shown  # model, lookup_order, model
    assert "invoke_agent support" in shown and "execute_tool lookup_order" in shown
    assert re.search(r"tokens   input \d+ \(cached 0\), output \d+", shown)


def test_serve_accepts_runs_that_a_separate_worker_executes(tmp_path: Path) -> None:
    process = make_process(tmp_path)
    apps = [str(ROOT / "examples" / "support.py")]
    logs = (tmp_path / "worker.log").open("wb"), (tmp_path / "serve.log").open("wb")
    worker = subprocess.Popen(
        [STEWARD, "worker", *apps],
        cwd=ROOT,
        env=process.env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    serve = subprocess.Popen(
        [STEWARD, "serve", *apps, "--port", str(process.port)],
        cwd=ROOT,
        env=process.env,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            try:
                httpx.get(f"{process.url}/readyz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert serve.poll() is None, (tmp_path / "serve.log").read_text()
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                subprocess.run(["sleep", "0.1"], check=True)
        headers = {"x-api-key": process.create_key()}
        response = httpx.post(
            f"{process.url}/runs/wait",
            headers=headers,
            timeout=60,
            json={"assistant_id": "support", "input": {"message": "Where is my order 42?"}},
        )
        assert response.status_code == 200
        assert response.json()["tools_used"] == ["lookup_order"]
        run_id = response.headers["content-location"].rsplit("/", 1)[-1]
        run = httpx.get(f"{process.url}/runs/{run_id}", headers=headers).json()
        assert run["status"] == "success" and run["usage"]["steps"] == 3
    finally:
        for proc in (serve, worker):
            proc.terminate()
            proc.wait(15)
        for log in logs:
            log.close()


def test_processes_starting_together_migrate_the_store_once(tmp_path: Path) -> None:
    # `steward serve` and `steward worker` started side by side both migrate at start.
    for attempt in range(3):
        process = make_process(tmp_path / str(attempt))
        procs = [
            subprocess.Popen(
                [STEWARD, "migrate"],
                cwd=ROOT,
                env=process.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        outputs = [proc.communicate(timeout=60)[0].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
