"""`/metrics` of a `steward worker`: the runs, tools and sandboxes it executes are measured in
its own process, which serves no API, so it answers a scrape on a port of its own.

Only `GET /metrics` with the `metrics_token`; by default on loopback. The fleet-wide figures
read from the database (queue, workers, approvals) stay on the API servers' `/metrics`.
"""

from __future__ import annotations

import contextlib
import hmac
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steward.config import Settings
from steward.errors import UserError
from steward.observe.metrics import RuntimeMetrics
from steward.server.auth import presented_key

_START_TIMEOUT_S = 10.0


def metrics_app(metrics: RuntimeMetrics, token: str) -> Starlette:
    async def scrape(request: Request) -> Response:
        presented = presented_key(dict(request.headers)) or ""
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return Response("send the metrics token as a Bearer token\n", status_code=401)
        openmetrics = "application/openmetrics-text" in request.headers.get("accept", "")
        body, media_type = metrics.exposition(openmetrics)
        return Response(body, media_type=media_type)

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])


@contextlib.contextmanager
def serving_worker_metrics(settings: Settings, metrics: RuntimeMetrics) -> Iterator[int | None]:
    """Serve while the block runs when `worker_metrics_port` is set; yields the bound port.

    In a thread of its own, as the test upstream is: the worker's event loop and its signal
    handlers stay the worker's, and a scrape never waits behind a busy run."""
    if settings.worker_metrics_port is None:
        yield None
        return
    if settings.metrics_token is None:
        raise UserError(
            "worker_metrics_port needs a metrics_token: set STEWARD_METRICS_TOKEN so a scrape "
            "can authenticate"
        )
    config = uvicorn.Config(
        metrics_app(metrics, settings.metrics_token.get_secret_value()),
        host=settings.worker_metrics_host,
        port=settings.worker_metrics_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="steward-worker-metrics", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(_START_TIMEOUT_S)
            raise UserError(
                f"the worker's metrics could not listen on {settings.worker_metrics_host}:"
                f"{settings.worker_metrics_port} (is the port taken?)"
            )
        time.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)
