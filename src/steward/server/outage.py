"""The outermost middleware: a request that finds the database unreachable gets a 503 problem.

Authentication runs in middleware, outside FastAPI's exception handlers, so this sits around it.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.server.problems import database_unavailable_response
from steward.store.outage import DATABASE_UNREACHABLE

log = logging.getLogger("steward.server")


class DatabaseOutageGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except DATABASE_UNREACHABLE as exc:
            if started:  # a stream already under way can only be cut
                raise
            log.warning("database unreachable on %s: %s", scope["path"], exc)
            await database_unavailable_response(scope["path"])(scope, receive, send)
