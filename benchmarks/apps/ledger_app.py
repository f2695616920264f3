"""The kill test's app: multi-step runs whose tool appends to a ledger keyed by idempotency key.

`STEWARD_LEDGER_URL` names the ledger's database (see `create_ledger`). Every execution of the
tool is also logged with its worker and pid, so the driver can tell replays and overlaps apart.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from functools import cache

import sqlalchemy as sa
from pydantic import BaseModel, Field

from steward import Context, Steward, ToolContext

app = Steward()

metadata = sa.MetaData()
ledger = sa.Table(
    "kill_ledger",
    metadata,
    sa.Column("idempotency_key", sa.String(100), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("executor", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)
executions = sa.Table(
    "kill_executions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("idempotency_key", sa.String(100), nullable=False),
    sa.Column("executor", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
)


def create_ledger(url: str) -> None:
    engine = sa.create_engine(_driver_url(url))
    metadata.create_all(engine)
    engine.dispose()


@cache
def _engine() -> sa.Engine:
    url = os.environ["STEWARD_LEDGER_URL"]
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(_driver_url(url), pool_size=4, max_overflow=4)


def _driver_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _executor() -> str:
    return os.environ.get("STEWARD_EXECUTOR_ID") or (
        f"{socket.gethostname()}-{os.environ.get('STEWARD_WORKER_SLOT', '?')}"
    )


def _begin(index: int, ctx: ToolContext) -> int:
    with _engine().begin() as conn:
        row = {
            "run_id": ctx.run_id,
            "step": index,
            "idempotency_key": ctx.idempotency_key,
            "executor": _executor(),
            "pid": os.getpid(),
        }
        execution_id = conn.execute(
            executions.insert().values(started_at=time.time(), **row).returning(executions.c.id)
        ).scalar_one()
        # The effect itself: written once per idempotency key, however often the step runs.
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        conn.execute(
            insert(ledger).values(**row).on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
    return int(execution_id)


def _end(execution_id: int) -> None:
    with _engine().begin() as conn:
        conn.execute(
            executions.update().where(executions.c.id == execution_id).values(ended_at=time.time())
        )


class Work(BaseModel):
    steps: int = Field(default=5, ge=1, le=100)
    work_s: float = Field(default=0.01, ge=0, le=10)


class Done(BaseModel):
    steps: list[int]


@app.tool(writes=True)
async def append_ledger(index: int, work_s: float, ctx: ToolContext) -> int:
    """Append this step to the ledger (once per idempotency key), then work for a while."""
    execution_id = await asyncio.to_thread(_begin, index, ctx)
    await asyncio.sleep(work_s)
    await asyncio.to_thread(_end, execution_id)
    return index


@app.agent(name="ledger", max_steps=200, timeout_s=3600)
async def ledger_run(ctx: Context, input: Work) -> Done:
    """`steps` ledger-appending tool steps in order."""
    done = []
    for index in range(input.steps):
        done.append(await ctx.tool("append_ledger", {"index": index, "work_s": input.work_s}))
    return Done(steps=done)
