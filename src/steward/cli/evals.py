"""`steward eval`: run an eval suite through the real runtime and gate on it; `steward eval
capture` turns recorded runs into replayable cases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.evals.results import SuiteResult


class _RunByDefault(TyperGroup):
    """`steward eval evals/support` means `steward eval run evals/support`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_cli = typer.Typer(
    cls=_RunByDefault,
    help="Run eval suites (`steward eval evals/<agent>`) and capture runs as cases.",
    no_args_is_help=True,
)
console = Console(stderr=True)


@eval_cli.command("run")
def run_command(
    suite_path: Annotated[Path, typer.Argument(help="The suite folder, e.g. evals/support.")],
    app: Annotated[
        str | None, typer.Option(help="App file to evaluate (suite.toml's app).")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Agent to evaluate (suite's agent).")] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="A previous run's JSON report to compare with.")
    ] = None,
    baseline_app: Annotated[
        str | None, typer.Option(help="Another app (version) to run as the baseline.")
    ] = None,
    baseline_agent: Annotated[str | None, typer.Option(help="Another agent as baseline.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the JSON, JUnit and HTML reports.")] = Path(
        ".steward/evals"
    ),
    judge: Annotated[bool, typer.Option(help="Grade rubrics with the suite's judge.")] = True,
) -> None:
    """Run a suite concurrently; exit 0 on pass, 100 when a threshold failed, 1 on an error."""
    from steward.errors import StewardError
    from steward.evals.gate import EXIT_ERROR

    try:
        code = _run(suite_path, app, agent, baseline, baseline_app, baseline_agent, out, judge)
    except StewardError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from exc
    raise typer.Exit(code)


def _run(
    suite_path: Path,
    app: str | None,
    agent: str | None,
    baseline_file: Path | None,
    baseline_app: str | None,
    baseline_agent: str | None,
    out: Path,
    judge: bool,
) -> int:
    from steward.config import Settings
    from steward.evals.cases import load_suite
    from steward.evals.gate import decide
    from steward.evals.reports import write_reports
    from steward.evals.results import load_result

    suite = load_suite(suite_path)
    settings = Settings()
    baseline = load_result(baseline_file) if baseline_file is not None else None
    if baseline is None and (baseline_app or baseline_agent):
        baseline = _evaluate(
            suite, baseline_app or app, baseline_agent, settings, judge, "baseline"
        )
    result = _evaluate(suite, app, agent, settings, judge, "candidate")
    decision = decide(result, suite.config.gate, baseline)
    paths = write_reports(result, decision, out)
    _print_summary(result, decision)
    console.print("reports: " + ", ".join(str(p) for p in paths.values()))
    return decision.exit_code


def _evaluate(
    suite: Any, app: str | None, agent: str | None, settings: Settings, judge: bool, label: str
) -> SuiteResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from steward.cli.loader import load_apps
    from steward.evals.runner import run_suite

    targets = [app] if app else ([suite.config.app] if suite.config.app else settings.apps)
    loaded = load_apps(targets)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"{label} {suite.name}", total=len(suite.cases))
        failed = 0

        def advance(result: Any) -> None:
            nonlocal failed
            failed += 0 if result.passed else 1
            progress.update(task, advance=1, description=f"{label} {suite.name} ({failed} failed)")

        return asyncio.run(
            run_suite(
                suite,
                loaded,
                settings,
                app_label=", ".join(targets),
                agent=agent,
                use_judge=judge,
                on_case=advance,
            )
        )


def _print_summary(result: SuiteResult, decision: Any) -> None:
    from rich.table import Table

    table = Table("case", "result", "score", "failures", "run")
    for case in result.cases:
        table.add_row(
            case.case_id,
            "[green]pass[/]" if case.passed else "[red]FAIL[/]",
            f"{case.score:.2f}",
            "; ".join(case.failures())[:120],
            case.run_id or "",
        )
    console.print(table)
    console.print(
        f"{result.passed}/{len(result.cases)} passed ({result.pass_rate:.1%}), "
        f"cost ${sum(c.cost_usd for c in result.cases):.6f}"
    )
    if decision.comparison is not None:
        c = decision.comparison
        console.print(
            f"vs baseline: {len(c.regressed)} regressed, {len(c.improved)} improved, "
            f"McNemar exact p(worse)={c.pass_fail.p_worse:.4f}, "
            f"sign test p(worse)={c.scores.p_worse:.4f}, "
            f"Wilcoxon p(worse)={c.score_ranks.p_worse:.4f}"
        )
        for case_id in c.regressed:
            console.print(f"  regressed: {case_id}")
    if decision.passed:
        console.print("[green]gate passed[/]")
        return
    for reason in decision.reasons:
        console.print(f"[red]gate failed:[/] {reason}")
    for case_id in decision.failed_cases:
        console.print(f"  failed: {case_id}")


@eval_cli.command("capture")
def capture_command(
    run_ids: Annotated[list[str], typer.Argument(help="Ids of recorded runs.")],
    out: Annotated[
        Path | None,
        typer.Option(help="JSONL file to append to (default: evals/<agent>/captured.jsonl)."),
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant the runs belong to.")] = "default",
    answer_field: Annotated[str, typer.Option(help="Output field with the answer.")] = "answer",
) -> None:
    """Turn recorded runs into cases that replay their recorded tool results."""
    from steward.durable.recorded import read_journal
    from steward.errors import StewardError
    from steward.evals.capture import append_cases, case_from_run
    from steward.evals.gate import EXIT_ERROR
    from steward.store.database import Database
    from steward.store.runs import RunStore

    settings = _settings_with_store()
    db = Database(settings.resolved_database_url)
    try:
        cases = []
        for run_id in run_ids:
            run = RunStore(db).get_run(tenant, run_id)
            if run is None:
                raise StewardError(f"no run {run_id} in tenant {tenant}")
            steps = asyncio.run(read_journal(settings.durable_database_url, run_id))
            cases.append((run.agent, case_from_run(run, steps, answer_field)))
    except StewardError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from exc
    finally:
        db.dispose()
    for agent, case in cases:
        target = out or Path("evals") / agent / "captured.jsonl"
        if append_cases(target, [case]):
            console.print(f"captured {case.id} -> {target}", soft_wrap=True)
        else:
            console.print(f"{case.id} is already in {target}", soft_wrap=True)


def _settings_with_store() -> Settings:
    from steward.config import Settings
    from steward.store import migrate

    settings = Settings()
    migrate.upgrade(settings.resolved_database_url)
    return settings


def print_evaluations(out: Console, spans: list[dict[str, Any]]) -> None:
    """The `gen_ai.evaluation.result` events on a run's spans, for `steward runs show`."""
    from rich.table import Table

    from steward.evals.span_events import EVALUATION_EVENT

    events = [e for s in spans for e in s["events"] if e["name"] == EVALUATION_EVENT]
    if not events:
        return
    table = Table("evaluation", "suite/case", "score", "label", "explanation")
    for event in events:
        attributes = event["attributes"]
        table.add_row(
            attributes.get("gen_ai.evaluation.name", ""),
            f"{attributes.get('steward.eval.suite', '')}/{attributes.get('steward.eval.case', '')}",
            f"{attributes.get('gen_ai.evaluation.score.value', 0.0):.2f}",
            attributes.get("gen_ai.evaluation.score.label", ""),
            attributes.get("gen_ai.evaluation.explanation", ""),
        )
    out.print(table)
