"""`steward mcp`: deploy and list hosted MCP servers (files written with the `mcp` SDK's
`MCPServer`). A running `steward dev` or `serve` on the same home picks a deploy up within
seconds and serves it at `/mcp/<name>` for the deployment's tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

mcp_cli = typer.Typer(help="Host MCP servers written with the official SDK.", no_args_is_help=True)
console = Console()


def _root() -> Path:
    from steward.config import Settings

    return Settings().home / "mcp"


@mcp_cli.command("deploy")
def deploy(
    path: Annotated[Path, typer.Argument(help="A Python file that defines an MCPServer.")],
    name: Annotated[
        str | None, typer.Option(help="Deployment name; default: the file's stem.")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant whose keys may reach it.")] = "default",
) -> None:
    """Deploy a new version of an MCP server; served at /mcp/<name>."""
    from steward.errors import UserError
    from steward.tools.mcp_hosting import deploy as deploy_server

    try:
        deployment = deploy_server(_root(), path, name=name, tenant=tenant)
    except UserError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(
        f"deployed {deployment.name} v{deployment.version} for tenant {deployment.tenant}: "
        f"/mcp/{deployment.name}"
    )


@mcp_cli.command("list")
def list_deployments() -> None:
    """The current version of each hosted MCP server."""
    from steward.tools.mcp_hosting import read_registry

    table = Table("name", "version", "tenant", "deployed", "log")
    root = _root()
    for deployment in read_registry(root).values():
        deployed = datetime.fromtimestamp(deployment.created_at, UTC).isoformat(timespec="seconds")
        log = deployment.directory(root) / "server.log"
        table.add_row(
            deployment.name, str(deployment.version), deployment.tenant, deployed, str(log)
        )
    console.print(table)
