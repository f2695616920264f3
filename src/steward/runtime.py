"""The composition root: builds store, durable core, hot state, tracing and engine from settings.

`steward dev` runs one `Runtime` that serves HTTP and executes runs; `steward serve` one that
only accepts runs; `steward worker` one that only executes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from steward.app import Steward
from steward.config import Settings
from steward.durable.dbos_engine import DBOSEngine
from steward.models.gateway import Gateway
from steward.models.gateway_factory import build_gateway
from steward.models.router import ModelRouter
from steward.observe.tracing import Tracing
from steward.policy.rate_limit import MemoryRateLimiter
from steward.runs.engine import RunEngine
from steward.sandbox.manager import SandboxManager
from steward.security.keys import KeyStore
from steward.security.services import Security
from steward.store import migrate
from steward.store.database import Database
from steward.store.hot import MemoryHotState
from steward.store.runs import RunStore


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: KeyStore
    tracing: Tracing
    engine: RunEngine
    rate_limiter: MemoryRateLimiter
    gateway: Gateway
    sandboxes: SandboxManager
    security: Security

    @classmethod
    def build(cls, settings: Settings, app: Steward, *, execute: bool) -> Runtime:
        settings.home.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        security = Security.build(settings, db)
        tracing = Tracing(
            db,
            flush_interval_ms=settings.trace_flush_interval_ms,
            capture_content=settings.capture_message_content,
        )
        durable = DBOSEngine(
            settings.durable_database_url,
            executor_id=settings.executor_id,
            queue_poll_interval_s=settings.queue_poll_interval_s,
        )
        gateway = build_gateway(settings, db, tracing)
        sandboxes = SandboxManager(
            db,
            settings.home,
            default_backend=settings.sandbox_backend,
            allow_unisolated=settings.sandbox_allow_unisolated,
            pool_size=settings.sandbox_pool_size,
        )
        engine = RunEngine(
            app,
            store=RunStore(db),
            durable=durable,
            hot=MemoryHotState(),
            tracing=tracing,
            models=ModelRouter(settings.model),
            execute=execute,
            gateway=gateway,
            sandboxes=sandboxes,
            secrets=security.secrets,
        )
        return cls(
            settings=settings,
            db=db,
            keys=security.keys,
            tracing=tracing,
            engine=engine,
            rate_limiter=MemoryRateLimiter(settings.rate_limit_per_minute),
            gateway=gateway,
            sandboxes=sandboxes,
            security=security,
        )

    async def start(self) -> None:
        await self.sandboxes.start()
        await self.engine.launch()
        self.security.start()

    async def stop(self) -> None:
        # Sandboxes first: a frozen (standby) sandbox ignores its launcher's death signal, so
        # it must be thawed and killed before anything slower can delay or abort the shutdown.
        await self.sandboxes.close()
        await self.engine.shutdown()
        await self.gateway.aclose()
        await self.security.stop()
        self.tracing.shutdown()
        self.db.dispose()
