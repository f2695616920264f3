"""`steward secrets …` and `steward audit …`: the secret store and the audit trail from a shell.

Secret values are read from standard input (never from arguments, which other users can see).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from steward.security.services import Security

secrets_cli = typer.Typer(help="Set, list and rotate encrypted secrets.", no_args_is_help=True)
audit_cli = typer.Typer(help="Export and verify the signed audit trail.", no_args_is_help=True)
console = Console(width=200) if not sys.stdout.isatty() else Console()
Tenant = Annotated[str, typer.Option(help="Tenant the secret belongs to.")]


def open_security() -> Security:
    """The security services on the configured store; the CLI's changes are audited too."""
    from steward.config import Settings
    from steward.security.services import Security
    from steward.store import migrate
    from steward.store.database import Database

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)
    return Security.build(settings, Database(settings.resolved_database_url))


@secrets_cli.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="The secret's name, e.g. `crm_token`.")],
    tenant: Tenant = "default",
) -> None:
    """Store a secret, read from standard input (one trailing newline is dropped)."""
    from steward.errors import UserError

    value = sys.stdin.read()
    value = value.removesuffix("\n").removesuffix("\r")
    try:
        open_security().secrets.set(tenant, name, value)
    except UserError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"stored secret {name} for tenant {tenant}")


@secrets_cli.command("list")
def secrets_list(tenant: Tenant = "default") -> None:
    """List secret names and the key each is encrypted under (never the values)."""
    table = Table("name", "key id", "updated")
    for info in open_security().secrets.list(tenant):
        table.add_row(info.name, info.key_id, info.updated_at)
    console.print(table)


@secrets_cli.command("rotate")
def secrets_rotate(
    new_key: Annotated[
        bool, typer.Option(help="Add a new key to the key file first (not with env keys).")
    ] = True,
) -> None:
    """Re-encrypt every secret under the newest key (adding one to the key file by default)."""
    security = open_security()
    keyring = security.secrets.keyring
    if new_key and keyring.key_file is not None:
        console.print(f"added key {keyring.add_key()} to {keyring.key_file}")
    changed = security.secrets.rotate()
    console.print(f"re-encrypted {changed} secrets under key {keyring.current_id}")


@audit_cli.command("export")
def audit_export(
    tenant: Annotated[str, typer.Option(help="Tenant whose log to export.")] = "default",
) -> None:
    """Print the tenant's audit log and checkpoints as JSON."""
    security = open_security()
    security.audit.checkpoint(tenant)
    print(json.dumps(security.audit.export(tenant), indent=1))


@audit_cli.command("verify")
def audit_verify(
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant (default: every tenant).")
    ] = None,
    export: Annotated[
        Path | None, typer.Option(help="Verify an exported JSON file instead of the database.")
    ] = None,
    keys: Annotated[
        Path | None, typer.Option(help="Directory of trusted `<key id>.pub` files.")
    ] = None,
) -> None:
    """Recompute every leaf and tree head, check every signature; exit 1 at the first bad record."""
    from steward.audit.signing import load_public_keys
    from steward.audit.verify import verify_export
    from steward.config import Settings

    settings = Settings()
    public_keys = load_public_keys(keys or settings.resolved_audit_key_dir)
    if export is not None:
        exports = [json.loads(export.read_text())]
    else:
        audit_log = open_security().audit
        tenants = [tenant] if tenant else audit_log.tenants()
        exports = [audit_log.export(t) for t in tenants]
    failed = False
    for data in exports:
        report = verify_export(data, public_keys)
        first = report.first_bad
        if first is None:
            console.print(
                f"tenant {report.tenant_id}: ok — {report.records} records, "
                f"{report.checkpoints} checkpoints, {report.signed_records} signed"
            )
            continue
        failed = True
        console.print(f"tenant {report.tenant_id}: FIRST BAD RECORD {first.seq}: {first.problem}")
    if failed:
        raise typer.Exit(1)


@audit_cli.command("rotate-key")
def audit_rotate_key() -> None:
    """Make a new checkpoint signing key current; older keys keep verifying old checkpoints."""
    security = open_security()
    console.print(f"checkpoints are now signed with key {security.audit.signer.rotate()}")
