"""The HTTP application: thin handlers over the run engine.

Each handler authenticates, validates, starts or reads a run, and answers; no agent logic here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from steward.app import Steward
from steward.config import Settings
from steward.models.response_cache import ResponseCache
from steward.observe.store_metrics import StoreCollector
from steward.runtime import Runtime
from steward.server import openapi, ui
from steward.server.auth import AuthGate
from steward.server.guards import RequestGuard
from steward.server.http_metrics import HttpMetrics
from steward.server.idempotency import IdempotencyGate
from steward.server.outage import DatabaseOutageGuard
from steward.server.problems import install_problem_handlers
from steward.server.proxy_dispatch import ProxyDispatch
from steward.server.routes import (
    admin,
    assistants,
    crons,
    gateway,
    health,
    hooks,
    info,
    mcp,
    proxy,
    runs,
    sandboxes,
    store,
    thread_extras,
    threads,
    traces,
    webhooks,
)
from steward.store.idempotency import IdempotencyStore


def create_app(settings: Settings, app: Steward, *, execute: bool = True) -> FastAPI:
    """`execute=False` accepts runs for separate `steward worker` processes to execute."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.build(settings, app, execute=execute)
        api.state.runtime = runtime
        api.state.db = runtime.db
        api.state.keys = runtime.keys
        api.state.engine = runtime.engine
        api.state.platform = runtime.platform
        api.state.tracing = runtime.tracing
        api.state.rate_limiter = runtime.rate_limiter
        api.state.rate_limits = runtime.rate_limits
        api.state.webhook_config = runtime.webhook_config
        api.state.webhook_store = runtime.webhook_store
        api.state.idempotency = IdempotencyStore(
            runtime.db, ttl_s=settings.idempotency_ttl_s, lease_s=settings.idempotency_lease_s
        )
        api.state.gateway = runtime.gateway
        api.state.response_cache = (
            ResponseCache(
                ttl_s=settings.gateway.response_cache_ttl_s,
                max_entries=settings.gateway.response_cache_entries,
            )
            if settings.gateway.response_cache
            else None
        )
        api.state.sandboxes = runtime.sandboxes
        api.state.security = runtime.security
        runtime.gateway.metrics.registry.register(
            StoreCollector(runtime.db, stale_after_s=settings.worker_stale_after_s)
        )
        await runtime.start()
        try:
            async with mcp.serving(runtime, app) as api.state.mcp:
                yield
        finally:
            await runtime.stop()

    api = FastAPI(
        title="Steward",
        summary="A production runtime for AI agents.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_problem_handlers(api)
    openapi.install(api)
    # Added last runs first: authenticate before any body is read or checked; idempotency
    # comes after both, so it sees the principal and a bounded body. The proxy endpoints leave
    # the chain last, straight to their handlers.
    api.add_middleware(ProxyDispatch)
    api.add_middleware(IdempotencyGate, max_body_bytes=settings.max_body_bytes)
    api.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    api.add_middleware(AuthGate)
    api.add_middleware(DatabaseOutageGuard)  # covers authentication too
    api.add_middleware(HttpMetrics)  # outermost: counts every answer, refusals included
    modules = (
        health,
        info,
        assistants,
        thread_extras,
        threads,
        crons,
        runs,
        store,
        traces,
        sandboxes,
        admin,
        hooks,
        webhooks,
        proxy,
        gateway,
        mcp,
    )
    for module in modules:
        api.include_router(module.router)
    api.include_router(ui.router)
    api.mount("/ui/static", StaticFiles(directory=ui.STATIC_DIR), name="ui-static")
    return api
