"""Run the upstream inside a test process: uvicorn on a free port in a background thread, and a
small synchronous client for its control API.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from steward.upstream.app import create_upstream_app

__all__ = ["UpstreamControl", "run_upstream_in_thread"]

_STARTUP_TIMEOUT_S = 10.0


@contextmanager
def run_upstream_in_thread(
    app: Starlette | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve the upstream (or `app`) until the block ends; yields its base URL, no `/v1`.

    Port 0 lets the OS choose a free port. Shutdown is graceful, so open keep-alive
    connections close and pytest sees no unclosed sockets.
    """
    config = uvicorn.Config(
        app or create_upstream_app(),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",  # no websocket library imports: nothing to warn under filterwarnings=error
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="steward-upstream", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(_STARTUP_TIMEOUT_S)
            raise RuntimeError(f"the upstream did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(_STARTUP_TIMEOUT_S + 5)


@cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~50 ms; once per process instead of once per control call.
    return ssl.create_default_context()


class UpstreamControl:
    """The control API as plain method calls; `base_url` is what `run_upstream_in_thread`
    yields."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _post(self, path: str, payload: Any) -> Any:
        response = httpx.post(f"{self.base_url}{path}", json=payload, verify=_ssl_context())
        response.raise_for_status()
        return response.json()

    def script(self, *responses: dict[str, Any]) -> None:
        """Queue responses (`ScriptedResponse` fields as dicts) for the next model requests."""
        self._post("/_control/script", {"responses": list(responses)})

    def faults(self, **faults: Any) -> None:
        """Replace the active faults (`Faults` fields as keywords)."""
        self._post("/_control/faults", faults)

    def reset(self) -> None:
        self._post("/_control/reset", {})

    def requests(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.base_url}/_control/requests", verify=_ssl_context())
        response.raise_for_status()
        requests: list[dict[str, Any]] = response.json()["requests"]
        return requests
