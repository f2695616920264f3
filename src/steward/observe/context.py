"""The run a piece of code is working for, carried in contextvars across awaits and tasks.

Spans read it to stamp run and tenant ids and to derive the run's trace id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_run_id: ContextVar[str | None] = ContextVar("steward_run_id", default=None)
_tenant_id: ContextVar[str | None] = ContextVar("steward_tenant_id", default=None)


@contextmanager
def run_scope(run_id: str, tenant_id: str) -> Iterator[None]:
    """Mark the code inside as working for `run_id` of `tenant_id`; restores the outer run after."""
    run_token = _run_id.set(run_id)
    tenant_token = _tenant_id.set(tenant_id)
    try:
        yield
    finally:
        _tenant_id.reset(tenant_token)
        _run_id.reset(run_token)


def current_run_id() -> str | None:
    return _run_id.get()


def current_tenant_id() -> str | None:
    return _tenant_id.get()
