"""Riding out a database outage: which errors mean "unreachable", and retrying through them.

A run's own bookkeeping waits for the database to return; an HTTP request answers 503 instead.
"""

from __future__ import annotations

import logging
import time
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

P = ParamSpec("P")
T = TypeVar("T")


def retry_while_unreachable(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call `fn` (blocking), again and again with backoff while the database is unreachable.

    For writes that must land for a run to be correct (its start, its outcome): the durable
    core pauses the same way, so a PostgreSQL restart delays runs but fails none.
    """
    delay = 0.1
    while True:
        try:
            return fn(*args, **kwargs)
        except DATABASE_UNREACHABLE as exc:
            log.warning("database unreachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
