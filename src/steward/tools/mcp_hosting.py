"""Hosted MCP servers: `steward mcp deploy server.py` runs an `MCPServer` file as a managed
deployment, reachable at `/mcp/<name>` behind Steward's authentication.

- **Versioned.** Each deploy copies the file to `<home>/mcp/<name>/v<N>/server.py` and makes
  version N current; older versions stay on disk. The registry is `<home>/mcp/deployments.json`.
- **Sandboxed, one process per server.** The server runs under bubblewrap: its own user, pid,
  IPC, UTS and network namespaces (no network but loopback), all capabilities dropped, the host
  read-only, a private /tmp, an empty environment; it serves streamable HTTP on a Unix socket in
  its version directory, the only way in.
- **Health-checked and restarted.** Every `check_s` the supervisor sends an MCP `ping` through
  the socket; a server that exited or failed `failures` checks in a row is killed and started
  again after an exponential backoff (1 s doubling to 60 s), reset once it has been healthy.
- **Logs kept.** The server's stdout and stderr are appended to `server.log` beside its file.

The supervisor re-reads the registry on each health round, so a deploy from the command line
reaches a running server within `check_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steward.errors import UserError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

BWRAP = "/usr/bin/bwrap"
REGISTRY = "deployments.json"
SOCKET = "server.sock"
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
PING = {"jsonrpc": "2.0", "id": "health", "method": "ping"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass(frozen=True)
class Deployment:
    name: str
    version: int
    tenant: str
    created_at: float

    def directory(self, root: Path) -> Path:
        return root / self.name / f"v{self.version}"


def read_registry(root: Path) -> dict[str, Deployment]:
    path = root / REGISTRY
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {name: Deployment(**entry) for name, entry in data.items()}


def deploy(root: Path, source: Path, *, name: str | None = None, tenant: str) -> Deployment:
    """Copy `source` as the next version of deployment `name` (default: the file's stem)."""
    name = name or source.stem.replace(".", "_").lower()
    if not _NAME.match(name):
        raise UserError(f"deployment name {name!r}: lower-case letters, digits, '_' or '-'")
    if not source.is_file():
        raise UserError(f"{source} is not a file")
    registry = read_registry(root)
    current = registry.get(name)
    if current is not None and current.tenant != tenant:
        raise UserError(f"deployment {name!r} belongs to another tenant")
    version = (current.version if current else 0) + 1
    deployment = Deployment(name=name, version=version, tenant=tenant, created_at=time.time())
    directory = deployment.directory(root)
    directory.mkdir(parents=True, exist_ok=False)
    shutil.copyfile(source, directory / "server.py")
    os.chmod(directory, 0o777)  # the sandbox user creates its socket here
    registry[name] = deployment
    temporary = root / f".{REGISTRY}.{os.getpid()}"
    temporary.write_text(json.dumps({n: asdict(d) for n, d in registry.items()}, indent=2))
    temporary.replace(root / REGISTRY)
    return deployment


def sandboxed(command: list[str], directory: Path) -> list[str]:
    """`command` under bubblewrap, seeing the host read-only and writing only `directory`."""
    if not Path(BWRAP).exists():
        raise UserError("hosting MCP servers needs bubblewrap (apt-get install bubblewrap)")
    python_path = os.pathsep.join(p for p in sys.path if p)
    return [
        BWRAP,
        "--unshare-all",
        "--uid", "65534", "--gid", "65534",
        "--cap-drop", "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname", "mcp",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        *_python_under_tmp(),
        "--bind", str(directory), str(directory),
        "--chdir", str(directory),
        "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin",
        "--setenv", "PYTHONPATH", python_path,
        "--setenv", "HOME", "/tmp",
        "--",
        *command,
    ]  # fmt: skip


def _python_under_tmp() -> list[str]:
    """Read-only binds of this interpreter's files that live under /tmp (a venv or a checkout
    there), which the sandbox's own empty /tmp would hide; parents before children."""
    wanted = {sys.prefix, sys.exec_prefix, sys.base_prefix, os.path.dirname(sys.executable)}
    wanted.update(p for p in sys.path if p)
    under = sorted(
        {os.path.realpath(p) for p in wanted} | wanted,
        key=lambda p: (p.count(os.sep), p),
    )
    binds: list[str] = []
    kept: list[str] = []
    for path in under:
        if not (path == "/tmp" or path.startswith("/tmp/")) or not os.path.exists(path):
            continue
        if any(path == k or path.startswith(k + os.sep) for k in kept):
            continue  # inside a directory bound already
        kept.append(path)
        binds += ["--ro-bind", path, path]
    return binds


@dataclass
class HostedServer:
    """One deployment's process: started, health-checked, restarted with backoff."""

    root: Path
    deployment: Deployment
    failures_allowed: int = 3
    process: asyncio.subprocess.Process | None = None
    failures: int = 0
    restarts: int = 0
    next_start: float = 0.0
    healthy: bool = False
    _log: Any = field(default=None, repr=False)

    @property
    def directory(self) -> Path:
        return self.deployment.directory(self.root)

    @property
    def socket(self) -> Path:
        return self.directory / SOCKET

    async def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        runner = [sys.executable, "-m", "steward.tools.mcp_host_runner", "server.py", SOCKET]
        if self._log is None:
            self._log = (self.directory / "server.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *sandboxed(runner, self.directory),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            env={},
            start_new_session=True,
        )
        log.info("hosted MCP server %s v%d started", self.deployment.name, self.deployment.version)

    async def check(self) -> bool:
        """One health round: True when the server answered a ping (`healthy` is set by the
        supervisor, after the hooks that run when a server becomes healthy)."""
        import httpx

        if self.process is None:
            return False
        if self.process.returncode is None:
            try:
                async with client(self.socket, timeout=5) as http:
                    answer = await http.post("/mcp", json=PING, headers=MCP_HEADERS)
                ok = answer.status_code == 200 and "result" in answer.json()
            except (httpx.HTTPError, ValueError):
                ok = False
        else:
            ok = False
        if ok:
            self.failures = 0
        else:
            self.failures += 1
        return ok

    def due_for_restart(self, started_s: float, now: float) -> bool:
        exited = self.process is not None and self.process.returncode is not None
        # A fresh process gets a grace period to import and bind before failures count.
        failing = self.failures >= self.failures_allowed and now - started_s > 10
        return (exited or failing) and now >= self.next_start

    async def restart(self) -> None:
        await self.stop(keep_log=True)
        delay = BACKOFF_S[min(self.restarts, len(BACKOFF_S) - 1)]
        self.restarts += 1
        self.failures = 0
        self.next_start = time.monotonic() + delay
        log.warning(
            "hosted MCP server %s: restarting in %.0f s (restart %d)",
            self.deployment.name,
            delay,
            self.restarts,
        )

    async def stop(self, *, keep_log: bool = False) -> None:
        process, self.process = self.process, None
        self.healthy = False
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        if not keep_log and self._log is not None:
            self._log.close()
            self._log = None


def client(socket: Path, *, timeout: float) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(socket)),
        base_url="http://hosted",
        timeout=timeout,
    )


class Supervisor:
    """Every current deployment of `<home>/mcp`, kept running while the server runs."""

    def __init__(self, root: Path, *, check_s: float = 2.0) -> None:
        self.root = root
        self.check_s = check_s
        self.servers: dict[str, HostedServer] = {}
        self._started: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.on_healthy: list[Callable[[str], Awaitable[None]]] = []

    def get(self, name: str) -> HostedServer | None:
        return self.servers.get(name)

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await self._round()
        self._task = asyncio.create_task(self._forever(), name="mcp hosting")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(s.stop() for s in self.servers.values()), return_exceptions=True)
        self.servers.clear()

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            try:
                await self._round()
            except Exception:
                log.exception("MCP hosting round failed")

    async def _round(self) -> None:
        wanted = read_registry(self.root)
        for name, server in list(self.servers.items()):
            if wanted.get(name) != server.deployment:  # removed, or a new version deployed
                await server.stop()
                del self.servers[name]
        now = time.monotonic()
        for name, deployment in wanted.items():
            if name not in self.servers:
                self.servers[name] = HostedServer(self.root, deployment)
            server = self.servers[name]
            if server.process is None:
                if now >= server.next_start:
                    await server.start()
                    self._started[name] = now
                continue
            if await server.check():
                server.restarts = 0
                if not server.healthy:
                    for hook in self.on_healthy:  # e.g. import its tools for the app's agents
                        await hook(name)
                server.healthy = True
            else:
                server.healthy = False
                if server.due_for_restart(self._started.get(name, now), now):
                    await server.restart()
