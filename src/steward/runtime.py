"""The composition root: builds store, durable core, hot state, tracing and engine from settings.

`steward dev` runs one `Runtime` that serves HTTP and executes runs; `steward serve` one that
only accepts runs; `steward worker` one that only executes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from steward.app import Steward
from steward.batch.driver import BatchDriver, build_driver
from steward.config import Settings
from steward.durable.dbos_engine import RECOVERY_POLL_S, DBOSEngine
from steward.durable.sweeper import Sweeper
from steward.durable.workers import WorkerRegistry
from steward.memory.service import MemoryService, repair_memory, secret_values_from
from steward.memory.service import install as install_memory
from steward.memory.store_ranker import StoreRanker
from steward.models.gateway import Gateway
from steward.models.gateway_factory import build_gateway
from steward.models.router import ModelRouter
from steward.observe.metrics import ToolMetrics
from steward.observe.retention import RetentionJob
from steward.observe.sampling import SamplingCollector, SamplingPolicy
from steward.observe.tracing import Tracing
from steward.policy.rate_limit import Limit, MemoryRateLimiter, RateLimiter, RateLimits
from steward.rollout.deployed import install as install_versions
from steward.runs.engine import RunEngine, _payload
from steward.runs.platform import Platform
from steward.sandbox.manager import SandboxManager
from steward.security.keys import KeyStore
from steward.security.services import Security
from steward.server.schemas import run_json
from steward.store import migrate
from steward.store.database import Database
from steward.store.hot import HotState, MemoryHotState
from steward.store.runs import RunStore
from steward.tools.runner import ToolRunner
from steward.webhooks.dispatcher import WebhookConfig, WebhookDispatcher
from steward.webhooks.store import WebhookStore


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: KeyStore
    tracing: Tracing
    engine: RunEngine
    hot: HotState
    rate_limiter: RateLimiter
    rate_limits: RateLimits
    webhook_config: WebhookConfig
    webhook_store: WebhookStore
    webhooks: WebhookDispatcher | None
    gateway: Gateway
    sandboxes: SandboxManager
    security: Security
    durable: DBOSEngine | None = None
    platform: Platform | None = None
    registry: WorkerRegistry | None = None
    sweeper: Sweeper | None = None
    batches: BatchDriver | None = None
    memory: MemoryService | None = None
    _sweeping: asyncio.Task[None] | None = field(default=None, repr=False)
    _retention: asyncio.Task[None] | None = field(default=None, repr=False)
    _orphans_checked_at: float = field(default=float("-inf"), repr=False)
    _memory_repair: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, app: Steward, *, execute: bool, queue_dispatch: bool = False
    ) -> Runtime:
        """With `queue_dispatch` (a dedicated `steward worker`), runs arrive through the durable
        queue, polled every `queue_poll_interval_s`. Otherwise a process that executes starts
        the runs it accepts itself, at once, and polls the queue only as the fallback that
        picks up recovered and orphaned runs, every `RECOVERY_POLL_S`: an idle `steward dev`
        does next to nothing."""
        settings.home.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        security = Security.build(settings, db)
        tracing = Tracing(
            db,
            flush_interval_ms=settings.trace_flush_interval_ms,
            capture_content=settings.capture_message_content,
            sampling=SamplingPolicy(
                settings.trace_sample_share,
                settings.trace_keep_latency_s,
                settings.trace_keep_cost_usd,
            ),
            genai_semconv=settings.genai_semconv,
        )
        durable = DBOSEngine(
            settings.durable_database_url,
            queue_poll_interval_s=settings.queue_poll_interval_s
            if queue_dispatch
            else max(settings.queue_poll_interval_s, RECOVERY_POLL_S),
            worker_concurrency=settings.worker_concurrency,
        )
        registry = sweeper = None
        if execute:
            registry = WorkerRegistry(
                db,
                executor_id=settings.executor_id,
                slot=settings.worker_slot,
                heartbeat_s=settings.heartbeat_interval_s,
                stale_after_s=settings.worker_stale_after_s,
            )
            sweeper = Sweeper(
                db, registry, durable.recover, interval_s=settings.heartbeat_interval_s
            )
        hot = _hot_state(settings)
        gateway = build_gateway(settings, db, tracing)
        sandboxes = SandboxManager(
            db,
            settings.home,
            default_backend=settings.sandbox_backend,
            allow_unisolated=settings.sandbox_allow_unisolated,
            pool_size=settings.sandbox_pool_size,
        )
        sandboxes.metrics = gateway.metrics.runtime
        tool_runner = ToolRunner(
            threads=settings.tool_threads,
            overrides=settings.tools,
            # Served by `/metrics` with the gateway's own.
            metrics=ToolMetrics(gateway.metrics.registry),
        )
        SamplingCollector(tracing.sampler).register(gateway.metrics.registry)
        engine = RunEngine(
            app,
            store=RunStore(db),
            durable=durable,
            hot=hot,
            tracing=tracing,
            models=ModelRouter(settings.model),
            execute=execute,
            gateway=gateway,
            sandboxes=sandboxes,
            secrets=security.secrets,
            tool_runner=tool_runner,
        )
        webhook_config = WebhookConfig.from_settings(settings)
        webhook_store = WebhookStore(db)
        webhooks = None
        if execute:
            webhooks = WebhookDispatcher(webhook_store, webhook_config, run_json)
            engine.finished_listeners.append(webhooks.notify)
        platform = Platform(
            db, engine, cron_interval_s=settings.cron_poll_interval_s, schedule=execute
        )
        memory = MemoryService(
            db, platform.items, hot, secret_values=secret_values_from(security.secrets)
        )
        install_memory(memory)
        platform.items.index = StoreRanker(memory)  # the store's semantic `query`
        install_versions(engine, platform.assistants)  # deployed agent versions
        return cls(
            settings=settings,
            db=db,
            keys=security.keys,
            tracing=tracing,
            engine=engine,
            hot=hot,
            rate_limiter=_rate_limiter(settings),
            rate_limits=_rate_limits(settings),
            webhook_config=webhook_config,
            webhook_store=webhook_store,
            webhooks=webhooks,
            gateway=gateway,
            sandboxes=sandboxes,
            security=security,
            durable=durable,
            registry=registry,
            sweeper=sweeper,
            platform=platform,
            batches=build_driver(settings, db, engine, platform) if execute else None,
            memory=memory,
        )

    async def start(self) -> None:
        await self.sandboxes.start()
        # Remote MCP servers' tools, before recovered runs look for them.
        await self.engine.app.remote.start(self.security.secrets, self.settings.home / "mcp")
        if self.registry is not None and self.durable is not None:
            # Claim the executor id before DBOS recovers the runs pending under it.
            self.durable.set_executor_id(await asyncio.to_thread(self.registry.register))
            self.durable.set_fence(self.registry)
            self.registry.start()
        await self.engine.launch()
        if self.webhooks is not None:
            await self.webhooks.start()
        self.security.start()
        if self.platform is not None:
            self.platform.start()
        if self.batches is not None:
            self.batches.start()
        if self.memory is not None and self.registry is not None:
            # Index what a killed process left in the memory outbox (nothing to do: one query).
            self._memory_repair = asyncio.create_task(repair_memory(self.memory))
        if self.sweeper is not None:
            self.sweeper.after_sweep = self._start_orphans
            self._sweeping = asyncio.create_task(self.sweeper.run_forever())
        if self.registry is not None and self.settings.retention_interval_s > 0:
            job = RetentionJob(self.db, interval_s=self.settings.retention_interval_s)
            self._retention = asyncio.create_task(job.run_forever())

    async def stop(self) -> None:
        """Stop every part; one that fails still lets the others stop (its error is raised
        once all have had their turn)."""
        # An exit stack unwinds last-in first-out: the parts are pushed in reverse stop order.
        async with contextlib.AsyncExitStack() as parts:
            parts.callback(self.db.dispose)
            if self.memory is not None:
                parts.callback(self.memory.close)
                parts.push_async_callback(self._stop_memory_repair)
            parts.callback(self.tracing.shutdown)
            parts.push_async_callback(self.rate_limiter.aclose)
            parts.push_async_callback(self.hot.aclose)
            if self.registry is not None:
                # Inline and blocking, briefly: it needs no thread pool, so it stops whether
                # or not the durable core's shutdown closed the loop's default one.
                parts.callback(self.registry.stop)
            parts.push_async_callback(self.security.stop)
            parts.push_async_callback(self.gateway.aclose)
            parts.callback(self.engine.tool_runner.close)  # after the runs still finishing
            parts.callback(_replace_default_executor)
            parts.push_async_callback(self.engine.app.remote.stop)  # after the runs
            parts.push_async_callback(self.engine.shutdown)
            if self.webhooks is not None:
                parts.push_async_callback(self.webhooks.stop)
            parts.push_async_callback(self._stop_sweeping)
            if self.platform is not None:
                parts.push_async_callback(self.platform.stop)
            if self.batches is not None:
                parts.push_async_callback(self.batches.stop)
            # Sandboxes first: a frozen (standby) sandbox ignores its launcher's death signal,
            # so it must be thawed and killed before anything slower can delay the shutdown.
            parts.push_async_callback(self.sandboxes.close)

    async def _stop_memory_repair(self) -> None:
        if self._memory_repair is not None:
            self._memory_repair.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._memory_repair

    async def _stop_sweeping(self) -> None:
        for task in (self._sweeping, self._retention):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @property
    def executor_id(self) -> str | None:
        return self.registry.executor_id if self.registry is not None else None

    async def _start_orphans(self) -> None:
        """Start runs accepted long ago that never reached the durable engine.

        An API process that crashed (or lost the database) between storing a run and
        enqueueing it leaves such a run; the sweeper's turn finds it.
        """
        assert self.durable is not None and self.registry is not None
        # Only runs older than the stale time count, so looking every half of it is enough.
        now = time.monotonic()
        if now - self._orphans_checked_at < self.registry.stale_after_s / 2:
            return
        self._orphans_checked_at = now
        cutoff = datetime.now(UTC) - timedelta(seconds=self.registry.stale_after_s)
        runs = await asyncio.to_thread(self.engine.store.pending_runs)
        old = {
            run.id: run
            for run in runs
            if run.status == "pending" and _aware(run.created_at) < cutoff
        }
        for run_id in await self.durable.missing(list(old)[:500]):
            await self.durable.enqueue(run_id, _payload(old[run_id]))


def _replace_default_executor() -> None:
    """Give the loop a working default thread pool again: the durable core made its own pool
    the loop's default and has just shut it down, which would break every later `to_thread`
    of the process that embeds this runtime (and of a runtime started after this one)."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(thread_name_prefix="asyncio")
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _hot_state(settings: Settings) -> HotState:
    if settings.redis_url:
        from steward.store.hot_redis import RedisHotState  # only scale-out loads the client

        return RedisHotState(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryHotState()


def _rate_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        from steward.policy.rate_limit_redis import RedisRateLimiter

        return RedisRateLimiter(
            settings.redis_url,
            prefix=settings.redis_prefix,
            fail_open=settings.rate_limit_fail_open,
        )
    return MemoryRateLimiter()


def _rate_limits(settings: Settings) -> RateLimits:
    per_key = Limit.of(settings.rate_limit_per_minute, settings.rate_limit_burst)
    user_rate = settings.user_rate_limit_per_minute or settings.rate_limit_per_minute
    return RateLimits(per_key=per_key, per_user=Limit.of(user_rate, settings.user_rate_limit_burst))
