"""`steward retention set|show|enforce`: per-tenant retention of spans, captured content and
run payloads (days and maximum count each); executing processes enforce it on a schedule."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli.store import load_settings, open_database

if TYPE_CHECKING:
    pass

retention_cli = typer.Typer(
    help="Retention of spans, captured content and run payloads.", no_args_is_help=True
)

Limit = Annotated[int | None, typer.Option(min=0)]


@retention_cli.command("set")
def set_command(
    tenant: Annotated[str, typer.Option(help="Tenant id, or `*` for tenants without their own.")],
    spans_days: Limit = None,
    spans_max: Limit = None,
    content_days: Limit = None,
    content_max: Limit = None,
    payloads_days: Limit = None,
    payloads_max: Limit = None,
) -> None:
    """Set a tenant's policy (unset limits keep everything of that kind)."""
    from steward.observe.retention import RetentionPolicies, RetentionPolicy

    policy = RetentionPolicy(
        spans_days, spans_max, content_days, content_max, payloads_days, payloads_max
    )
    db = open_database(load_settings())
    try:
        RetentionPolicies(db).set(tenant, policy)
    finally:
        db.dispose()
    print(json.dumps({"tenant": tenant, **asdict(policy)}))


@retention_cli.command("show")
def show_command() -> None:
    """Each tenant's policy in force, as JSON."""
    from steward.observe.retention import RetentionPolicies

    db = open_database(load_settings())
    try:
        effective = RetentionPolicies(db).effective()
    finally:
        db.dispose()
    print(json.dumps({tenant: asdict(policy) for tenant, policy in effective.items()}, indent=2))


@retention_cli.command("enforce")
def enforce_command() -> None:
    """Enforce every policy now, in small batches, and print what was removed."""
    from steward.observe.retention import RetentionJob

    db = open_database(load_settings())
    try:
        report = RetentionJob(db).enforce()
    finally:
        db.dispose()
    print(json.dumps(asdict(report)))
