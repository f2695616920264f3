"""The `steward` command line: serve agents, run workers, manage keys, inspect runs.

Each command imports what it needs when it runs: `steward --help` or `steward keys list` does not
pay for the HTTP server, the durable engine and every agent-facing module.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from steward.cli.batch import batch_cli
from steward.cli.evals import eval_cli
from steward.cli.mcp import mcp_cli
from steward.cli.retention import retention_cli
from steward.cli.rollout import deploy_command, rollout_cli
from steward.cli.security import audit_cli, open_security, secrets_cli
from steward.cli.slo import slo_cli
from steward.cli.store import load_settings, open_database
from steward.security.roles import ROLES

if TYPE_CHECKING:
    pass

cli = typer.Typer(help="Steward: a production runtime for AI agents.", no_args_is_help=True)
keys_cli = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
runs_cli = typer.Typer(help="Inspect runs.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(runs_cli, name="runs")
cli.add_typer(secrets_cli, name="secrets")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(eval_cli, name="eval")
cli.add_typer(slo_cli, name="slo")
cli.add_typer(mcp_cli, name="mcp")
cli.add_typer(batch_cli, name="batch")
cli.add_typer(retention_cli, name="retention")
cli.add_typer(rollout_cli, name="rollout")
cli.command("deploy")(deploy_command)
console = Console(width=200) if not sys.stdout.isatty() else Console()

Apps = Annotated[
    list[str] | None,
    typer.Argument(help="App files or modules; default: `apps` in steward.toml."),
]


def _serve(apps: list[str] | None, host: str, port: int, *, execute: bool) -> None:
    import uvicorn

    from steward.cli.loader import load_apps
    from steward.cli.transport import serve_with_tls_floor, transport_options
    from steward.errors import UserError
    from steward.server.app import create_app

    settings = load_settings()
    try:
        app = load_apps(apps or settings.apps)
    except UserError as exc:
        raise typer.BadParameter(str(exc)) from exc
    mode = "API + worker" if execute else "API only"
    scheme = "https" if settings.tls_certfile else "http"
    console.print(
        f"[bold]steward[/] serving {', '.join(sorted(app.agents))} on {scheme}://{host}:{port} "
        f"({mode}; data in {settings.home}; model {settings.model})"
    )
    config = uvicorn.Config(
        create_app(settings, app, execute=execute),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        **transport_options(settings),
    )
    serve_with_tls_floor(config)


@cli.command()
def dev(
    apps: Apps = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve agents and execute their runs in one process, on embedded defaults."""
    _serve(apps, host, port, execute=True)


@cli.command()
def serve(
    apps: Apps = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API only; `steward worker` processes execute the runs."""
    _serve(apps, host, port, execute=False)


@cli.command()
def worker(
    apps: Apps = None,
    executor_id: Annotated[
        str | None,
        typer.Option(help="Stable id of this worker (default: `{hostname}-{slot}`)."),
    ] = None,
    slot: Annotated[
        int | None,
        typer.Option(min=0, help="Slot on this host (default: the lowest one free)."),
    ] = None,
) -> None:
    """Execute queued and recovered runs, without serving HTTP."""
    from steward.cli.loader import load_apps
    from steward.config import Settings
    from steward.runtime import Runtime
    from steward.server.worker_metrics import serving_worker_metrics

    overrides: dict[str, object] = {}
    if executor_id is not None:
        overrides["executor_id"] = executor_id
    if slot is not None:
        overrides["worker_slot"] = slot
    settings = Settings(**overrides)  # type: ignore[arg-type]
    app = load_apps(apps or settings.apps)

    async def main() -> None:
        runtime = Runtime.build(settings, app, execute=True, queue_dispatch=True)
        await runtime.start()
        with serving_worker_metrics(settings, runtime.gateway.metrics.runtime) as port:
            if port is not None:
                console.print(f"metrics on {settings.worker_metrics_host}:{port}/metrics")
            console.print(f"[bold]steward worker[/] {runtime.executor_id} executing runs")
            sys.stdout.flush()  # process managers (and the kill test) wait for this line
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        await runtime.stop()

    asyncio.run(main())


@cli.command(name="migrate")
def migrate_command() -> None:
    """Apply database migrations (also done at start in embedded mode)."""
    from steward.durable.dbos_engine import migrate_durable
    from steward.store import migrate

    settings = load_settings()
    migrate.upgrade(settings.resolved_database_url)
    migrate_durable(settings.durable_database_url)
    console.print("database is up to date")


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")],
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to.")] = "default",
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "admin",
    rate_per_minute: Annotated[
        float | None, typer.Option(help="This key's request rate; default: the global one.")
    ] = None,
    burst: Annotated[int | None, typer.Option(help="This key's burst size.")] = None,
) -> None:
    """Create an API key; its secret is printed once, as the last line."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    created = open_security().keys.create(
        name,
        tenant_id=tenant,
        role=role,
        rate_limit_per_minute=rate_per_minute,
        rate_limit_burst=burst,
    )
    console.print(f"created key {created.id} ({created.name}, tenant {tenant}, role {role})")
    print(created.secret)


def _id_column(header: str) -> Column:
    """The first column of a listing: whole ids, never wrapped, so they can be copied."""
    return Column(header, no_wrap=True, min_width=36)


@keys_cli.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None) -> None:
    """List API keys (never their secrets)."""
    from steward.security.keys import KeyStore

    table = Table(_id_column("id"), "name", "tenant", "role", "created", "revoked")
    for key in KeyStore(open_database(load_settings())).list(tenant):
        table.add_row(
            key.id,
            key.name,
            key.tenant_id,
            key.role,
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    console.print(table)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    if not open_security().keys.revoke(key_id):
        console.print(f"[red]no active key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@runs_cli.command("list")
def runs_list(
    tenant: Annotated[str, typer.Option(help="Tenant whose runs to list.")] = "default",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """List recent runs with status, steps, tokens and cost."""
    from steward.store.runs import RunStore

    table = Table(
        _id_column("run"), "agent", "status", "reason", "steps", "tokens", "cost $", "created"
    )
    for run in RunStore(open_database(load_settings())).list_runs(tenant, limit=limit):
        table.add_row(
            run.id,
            run.agent,
            run.status,
            run.stop_reason or "",
            str(run.steps),
            f"{run.input_tokens}/{run.output_tokens}",
            f"{run.cost_usd:.6f}",
            f"{run.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@runs_cli.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    tenant: Annotated[str, typer.Option(help="Tenant the run belongs to.")] = "default",
) -> None:
    """Show one run: status, steps, tokens, cost, duration and its spans."""
    from steward.observe.trace_store import list_run_spans
    from steward.store.runs import RunStore

    db = open_database(load_settings())
    run = RunStore(db).get_run(tenant, run_id)
    if run is None:
        console.print(f"[red]no run {run_id} in tenant {tenant}[/]")
        raise typer.Exit(1)
    duration = ""
    if run.started_at and run.ended_at:
        duration = f"{(run.ended_at - run.started_at).total_seconds():.3f}s"
    console.print(f"[bold]run[/] {run.id}  agent [bold]{run.agent}[/]  thread {run.thread_id}")
    console.print(f"status   {run.status} ({run.stop_reason or '-'})")
    console.print(f"steps    {run.steps}")
    console.print(
        f"tokens   input {run.input_tokens} (cached {run.cache_read_tokens}), "
        f"output {run.output_tokens}"
    )
    console.print(f"cost     ${run.cost_usd:.6f}")
    console.print(f"created  {run.created_at.replace(tzinfo=UTC).isoformat()}  duration {duration}")
    if run.error:
        console.print(f"error    {run.error}")
    if run.output is not None:
        console.print(f"output   {run.output}")
    table = Table("span", "duration ms", "status")
    spans = list_run_spans(db, tenant, run_id)
    for span in spans:
        table.add_row(span["name"], f"{span['duration_ms']:.1f}", span["status"])
    console.print(table)
    from steward.cli.evals import print_evaluations

    print_evaluations(console, spans)


def main() -> None:
    cli()


@cli.command("spend")
def spend_command(
    group_by: Annotated[
        str, typer.Option("--group-by", help="key, user, agent, tenant or model.")
    ] = "key",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: all).")] = None,
) -> None:
    """Model spend recorded by the gateway, grouped."""
    from steward.store.spend import SpendLedger

    if group_by not in ("key", "user", "agent", "tenant", "model"):
        raise typer.BadParameter("--group-by is one of key, user, agent, tenant, model")
    db = open_database(load_settings())
    try:
        totals = SpendLedger(db).totals(tenant, group_by)  # type: ignore[arg-type]
    finally:
        db.dispose()
    table = Table(group_by, "calls", "input", "output", "cache read", "cache write", "USD")
    for t in totals:
        table.add_row(
            t.group or "-",
            str(t.calls),
            str(t.input_tokens),
            str(t.output_tokens),
            str(t.cache_read_tokens),
            str(t.cache_write_tokens),
            f"{t.cost_usd:.6f}",
        )
    console.print(table)
