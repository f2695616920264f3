"""Counts every HTTP answer by method, route template and status (`steward_http_requests`).

The route template (`/runs/{run_id}`), not the path, is the label: ids would make a series per
request. The proxy endpoints, which skip the router, are labelled by their (fixed) paths;
requests no route matched (refused before routing, or unknown paths) share `unmatched`.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.server.proxy_dispatch import ENDPOINTS


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers for an exception that escapes

        async def send_tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        finally:
            route = getattr(scope.get("route"), "path", None) or _unrouted(scope["path"])
            runtime = getattr(scope["app"].state, "runtime", None)
            if runtime is not None:
                runtime.gateway.metrics.runtime.http_answered(
                    scope["method"], route, status, time.perf_counter() - started
                )


def _unrouted(path: str) -> str:
    return path if path in ENDPOINTS else "unmatched"
