"""Shared fixtures: a real `steward dev` subprocess on a free port, with its own data directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
STEWARD = str(Path(sys.executable).with_name("steward"))
APPS = [
    str(ROOT / "examples" / "support.py"),
    str(ROOT / "examples" / "research.py"),
    str(ROOT / "tests" / "apps" / "testing_app.py"),
    str(ROOT / "tests" / "apps" / "policy_app.py"),
    str(ROOT / "tests" / "apps" / "security_app.py"),
]


POSTGRES_ADMIN_URL = os.environ.get(
    "STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of the test's own on the shared server, dropped afterwards."""
    import psycopg

    name = f"steward_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StewardProcess:
    """A `steward dev` server we can kill and restart on the same data directory."""

    home: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    ready_timeout_s: float = 30.0
    apps: list[str] = field(default_factory=lambda: list(APPS))
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ledger(self) -> Path:
        return Path(self.env["STEWARD_TEST_LEDGER"])

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [STEWARD, "dev", *self.apps, "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            # A server that is not ready must not outlive the failed start: it would hold its
            # port and data directory for the rest of the session.
            self.kill()
            raise

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"steward dev exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"steward dev did not become ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [STEWARD, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def create_key(self, name: str = "test", **options: str) -> str:
        flags = [f"--{k}={v}" for k, v in options.items()]
        return self.cli("keys", "create", "--name", name, *flags).strip().splitlines()[-1]

    def ledger_lines(self) -> list[dict[str, object]]:
        import json

        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines() if line]


def make_process(tmp: Path, **extra_env: str) -> StewardProcess:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(
        {
            "STEWARD_HOME": str(home),
            "STEWARD_TEST_LEDGER": str(home / "ledger.jsonl"),
            "STEWARD_MODEL": "local",
            # Test servers launch no warm sandboxes unless a test asks for them.
            "STEWARD_SANDBOX_POOL_SIZE": "0",
            **extra_env,
        }
    )
    return StewardProcess(home=home, port=free_port(), env=env)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    """One shared server for tests that do not restart it."""
    process = make_process(tmp_path_factory.mktemp("steward"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api_key(server: StewardProcess) -> str:
    return server.create_key("session")


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[StewardProcess]:
    """A server of the test's own, for tests that kill or reconfigure it."""
    process = make_process(tmp_path)
    yield process
    process.stop()
