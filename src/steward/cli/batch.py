"""`steward batch run FILE --agent NAME`: upload a JSONL or CSV file as a batch to a running
Steward, follow it with a progress bar, and write its results (JSON Lines, input order)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

batch_cli = typer.Typer(help="Run an agent over a dataset (JSONL or CSV).", no_args_is_help=True)
console = Console(stderr=True)
_FINAL = ("completed", "cancelled")


def _body(
    path: Path, agent: str, concurrency: int, rate: float | None, attempts: int
) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    kind = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    body: dict[str, Any] = {
        "agent": agent,
        kind: text,
        "concurrency": concurrency,
        "max_attempts": attempts,
    }
    if rate is not None:
        body["rate_per_s"] = rate
    return body


def _fail(response: Any) -> None:
    console.print(f"[red]{response.status_code}[/] {response.text}")
    raise typer.Exit(1)


@batch_cli.command("run")
def run(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or .csv file.")],
    agent: Annotated[str, typer.Option(help="Graph or assistant id to run per item.")],
    url: Annotated[str, typer.Option(envvar="STEWARD_URL", help="Steward's base URL.")] = (
        "http://127.0.0.1:8000"
    ),
    key: Annotated[str | None, typer.Option(envvar="STEWARD_API_KEY", help="API key.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="Most runs at once.")] = 8,
    rate: Annotated[float | None, typer.Option(help="Most run starts per second.")] = None,
    max_attempts: Annotated[int, typer.Option(min=1, max=20, help="Runs per item.")] = 3,
    out: Annotated[
        Path | None, typer.Option(help="Write the results here (default: standard output).")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between progress polls.")] = 0.5,
) -> None:
    """Start a batch and follow it to its end; exits 1 if any item failed."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    headers = {"x-api-key": key or os.environ.get("STEWARD_API_KEY", "")}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        body = _body(file, agent, concurrency, rate, max_attempts)
        created = client.post("/v1/batches", json=body)
        if created.status_code != 201:
            _fail(created)
        batch = created.json()
        console.print(f"batch {batch['batch_id']}: {batch['total']} items on {agent}")
        columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("running", total=batch["total"])
            while batch["status"] not in _FINAL:
                time.sleep(interval)
                answer = client.get(f"/v1/batches/{batch['batch_id']}")
                if answer.status_code != 200:
                    _fail(answer)
                batch = answer.json()
                failed = batch["counts"]["failed"]
                label = f"{batch['status']}" + (f" ({failed} failed)" if failed else "")
                progress.update(task, completed=batch["done"], description=label)
        sink = out.open("wb") if out is not None else sys.stdout.buffer
        try:
            with client.stream("GET", f"/v1/batches/{batch['batch_id']}/results") as results:
                for chunk in results.iter_bytes():
                    sink.write(chunk)
        finally:
            if out is not None:
                sink.close()
    counts = batch["counts"]
    console.print(
        f"{batch['status']}: {counts['succeeded']} succeeded, {counts['failed']} failed, "
        f"{counts['cancelled']} cancelled"
    )
    if counts["failed"] or counts["cancelled"]:
        raise typer.Exit(1)
