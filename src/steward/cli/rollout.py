"""`steward deploy` stores an immutable agent version; `steward rollout` lists, evaluates,
promotes (refused while the version's eval gate fails, unless forced) and rolls back versions."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from steward.rollout.versions import VersionStore
    from steward.security.services import Security

rollout_cli = typer.Typer(help="List, evaluate, promote and roll back deployed agent versions.")
console = Console(width=200) if not sys.stdout.isatty() else Console()
Tenant = Annotated[str, typer.Option(help="Tenant whose audit trail records the decision.")]


def _open() -> tuple[VersionStore, Security]:
    from steward.config import Settings
    from steward.rollout.versions import VersionStore
    from steward.security.services import Security
    from steward.store import migrate
    from steward.store.database import Database

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    return VersionStore(db), Security.build(settings, db)


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


def deploy_command(
    app: Annotated[
        str | None, typer.Option(help="App file (path.py[:attr]); default: steward.toml's app.")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Agent to deploy (the app's only one).")] = None,
    tenant: Tenant = "default",
) -> None:
    """Store the agent's code and declarations as a new immutable version (unchanged code is
    the same version). It serves traffic once promoted: `steward rollout promote`."""
    from steward.config import Settings
    from steward.errors import StewardError
    from steward.rollout.deploy import deployable

    try:
        targets = [app] if app else Settings().apps
        if len(targets) != 1:
            raise _fail("name the app file to deploy with --app")
        code = deployable(targets[0], agent)
        store, security = _open()
        version, created = store.deploy(code, created_by=getpass.getuser())
    except StewardError as exc:
        raise _fail(str(exc)) from exc
    if created:
        security.audit.record(
            tenant,
            "rollout.deployed",
            {"agent": version.agent, "version": version.version, "code_hash": version.code_hash},
        )
    state = "deployed" if created else "unchanged, still"
    console.print(
        f"{version.agent}: {state} version {version.version} (code {version.code_hash[:12]})"
    )


@rollout_cli.command("list")
def list_command(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The agent's deployed versions, newest first, with their eval gate and which is stable."""
    store, _ = _open()
    stable = store.stable(agent)
    versions = store.list(agent)
    if as_json:
        print(json.dumps([v.to_json(stable=stable) for v in versions], indent=2))
        return
    table = Table("version", "code", "model", "eval", "stable", "created")
    for v in versions:
        evaluation = v.evaluation
        gate = "-" if evaluation is None else ("pass" if evaluation.get("passed") else "FAIL")
        table.add_row(
            str(v.version),
            v.code_hash[:12],
            str(v.manifest.get("model")),
            gate,
            "yes" if v.version == stable else "",
            v.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@rollout_cli.command("eval")
def eval_command(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    version: Annotated[int, typer.Argument(help="The deployed version to evaluate.")],
    suite: Annotated[Path, typer.Argument(help="The eval suite folder, e.g. evals/support.")],
    judge: Annotated[bool, typer.Option(help="Grade rubrics with the suite's judge.")] = True,
) -> None:
    """Run the suite on the version's stored code and record the gate on the version; exit 0
    on pass, 100 when a threshold failed, 1 on an error (as `steward eval`)."""
    from steward.config import Settings
    from steward.errors import StewardError
    from steward.evals.gate import EXIT_ERROR
    from steward.rollout.evaluation import evaluate_version

    store, _ = _open()
    try:
        result, decision = asyncio.run(
            evaluate_version(store, agent, version, suite, Settings(), use_judge=judge)
        )
    except StewardError as exc:
        raise _fail(str(exc), EXIT_ERROR) from exc
    verdict = "passed" if decision.passed else "FAILED"
    console.print(
        f"{agent} v{version}: {verdict} ({result.passed}/{len(result.cases)} cases)"
        + "".join(f"\n  {reason}" for reason in decision.reasons)
        + "".join(f"\n  failed: {case}" for case in decision.failed_cases)
    )
    raise typer.Exit(decision.exit_code)


@rollout_cli.command("promote")
def promote_command(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    version: Annotated[int, typer.Argument(help="The version new runs should take.")],
    force: Annotated[bool, typer.Option(help="Promote although the eval gate fails.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force).")] = None,
    tenant: Tenant = "default",
) -> None:
    """Make a version stable: new runs take it, runs in flight finish on theirs. Refused (exit
    1) while the version's recorded eval gate fails, unless --force --reason."""
    from steward.errors import StewardError
    from steward.rollout.promotion import promote

    store, security = _open()
    try:
        done = promote(
            store,
            agent,
            version,
            record=security.audit.record,
            tenant_id=tenant,
            actor=getpass.getuser(),
            force=force,
            reason=reason,
        )
    except StewardError as exc:
        raise _fail(str(exc)) from exc
    note = " (forced past a failing gate)" if done.forced else ""
    console.print(f"{agent}: version {version} is stable{note}; was {done.previous}")


@rollout_cli.command("rollback")
def rollback_command(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit trail).")] = None,
    tenant: Tenant = "default",
) -> None:
    """Make the version that was stable before the current one stable again (audited); runs
    in flight finish on their version."""
    from steward.errors import StewardError
    from steward.rollout.promotion import roll_back

    store, security = _open()
    try:
        moved = roll_back(
            store,
            agent,
            record=security.audit.record,
            tenant_id=tenant,
            actor=getpass.getuser(),
            reason=reason,
        )
    except StewardError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{agent}: rolled back from version {moved[0]} to version {moved[1]}")
