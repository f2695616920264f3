"""PostgreSQL restarted under load: no accepted run is lost, the API answers 503 meanwhile.

The test runs its own PostgreSQL cluster (initdb into a temporary directory, on a free port),
never the shared server, so stopping it disturbs nobody else.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.test_scale_out import Cluster, _wait

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class OwnPostgres:
    def __init__(self, root: Path) -> None:
        self.data = root / "pgdata"
        self.port = free_port()
        self.log = root / "postgres.log"
        shutil.chown(root, "postgres", "postgres")

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120
        )

    def init(self) -> None:
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL 15 server binaries are required (scripts/ensure-services)")
    # Under /tmp itself: pytest's own temporary tree is private to root.
    root = Path(tempfile.mkdtemp(prefix="steward-pg-"))
    server = OwnPostgres(root)
    server.init()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):
        server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_restart_loses_no_accepted_run_and_answers_503_meanwhile(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cluster = Cluster(home, own_postgres.url)
    try:
        cluster.serve()
        headers = {"x-api-key": cluster.key()}
        cluster.worker(0)
        accepted: list[str] = []
        outage_answers: list[httpx.Response] = []
        others: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=cluster.url, headers=headers, timeout=30) as client:
                while not stop.is_set():
                    response = client.post(
                        "/runs",
                        json={"assistant_id": "multistep", "input": {"steps": 3, "sleep_s": 0.2}},
                    )
                    if response.status_code == 200:
                        accepted.append(response.json()["run_id"])
                    elif response.status_code == 503:
                        outage_answers.append(response)
                        time.sleep(0.1)
                    else:
                        others.append(response.status_code)
                    time.sleep(0.05)

        loader = threading.Thread(target=load)
        loader.start()
        _wait(lambda: len(accepted) >= 5, 60, "runs to be accepted")
        own_postgres.stop()
        _wait(lambda: outage_answers, 30, "a 503 while PostgreSQL is down")
        time.sleep(1.5)
        own_postgres.start()
        before = len(accepted)
        _wait(lambda: len(accepted) >= before + 5, 60, "the API to accept runs again")
        stop.set()
        loader.join(30)

        assert others == []
        problem = outage_answers[0]
        assert problem.headers["content-type"] == "application/problem+json"
        assert problem.json()["type"].endswith("/unavailable")
        assert int(problem.headers["retry-after"]) > 0

        def all_succeeded() -> bool:
            with httpx.Client(base_url=cluster.url, headers=headers) as client:
                return all(
                    client.get(f"/runs/{rid}").json()["status"] == "success" for rid in accepted
                )

        _wait(all_succeeded, 120, "every accepted run to succeed")
    finally:
        cluster.stop()
