"""`steward slo report` (table or --json) and `steward slo alert` (burn-rate alerts, signed
webhooks, once per firing; run it from cron or a process manager every minute)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from steward.cli.store import load_settings, open_database

slo_cli = typer.Typer(help="Service-level objectives from slo.toml.", no_args_is_help=True)
console = Console()

SloFile = Annotated[Path, typer.Option("--file", help="The SLO file.")]
Tenant = Annotated[str, typer.Option(help="Tenant whose runs count.")]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


@slo_cli.command("report")
def report_command(
    file: SloFile = Path("slo.toml"),
    tenant: Tenant = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each agent's figures over its rolling window against its objectives."""
    from steward.errors import UserError
    from steward.slo.config import load_slo
    from steward.slo.report import slo_report

    try:
        config = load_slo(file)
    except UserError as exc:
        raise typer.BadParameter(str(exc)) from exc
    db = open_database(load_settings())
    try:
        report = slo_report(db, config, tenant, datetime.now(UTC))
    finally:
        db.dispose()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table("agent", "objective", "target", "actual", "met", "runs")
    for agent in report["agents"]:
        for row in agent["objectives"]:
            met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "no data"}[row["met"]]
            table.add_row(
                agent["agent"],
                row["objective"],
                _fmt(row["target"]),
                _fmt(row["actual"]),
                met,
                str(agent["runs"]),
            )
    console.print(table)


@slo_cli.command("alert")
def alert_command(
    file: SloFile = Path("slo.toml"),
    tenant: Tenant = "default",
    every: Annotated[
        float | None, typer.Option(help="Check again every this many seconds, until stopped.")
    ] = None,
) -> None:
    """Evaluate the burn-rate rules and deliver the alerts that fire (once per firing)."""
    from steward.errors import UserError
    from steward.slo.alerts import SloAlerter
    from steward.slo.config import load_slo
    from steward.webhooks.dispatcher import WebhookConfig

    settings = load_settings()
    try:
        config = load_slo(file)
    except UserError as exc:
        raise typer.BadParameter(str(exc)) from exc
    db = open_database(settings)
    alerter = SloAlerter(db, config, WebhookConfig.from_settings(settings), tenant_id=tenant)

    async def loop() -> None:
        while True:
            for rate, episode in await alerter.check(datetime.now(UTC)):
                console.print(
                    f"alert {rate.rule} for {rate.agent} {rate.objective}: burn "
                    f"{rate.long_burn:.1f}x / {rate.short_burn:.1f}x (episode {episode})"
                )
            if every is None:
                return
            await asyncio.sleep(every)

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:
        pass
    finally:
        db.dispose()
