"""Riding out a database outage: which errors mean "unreachable", and retrying through them.

A run's own bookkeeping waits for the database to return; an HTTP request answers 503 instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import psycopg
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("steward.store")

DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
MAX_DELAY_S = 2.0

P = ParamSpec("P")
T = TypeVar("T")


async def until_reachable(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call blocking `fn` in a worker thread, again and again with backoff while the database
    is unreachable.

    For writes that must land for a run to be correct (its start, its outcome): the durable
    core pauses the same way, so a PostgreSQL restart delays runs but fails none. Each attempt
    holds a thread only while it runs; the waits between attempts are on the event loop, so a
    long outage cannot occupy the shared thread pool with sleeping retries.
    """
    delay = 0.1
    while True:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except DATABASE_UNREACHABLE as exc:
            log.warning("database unreachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
