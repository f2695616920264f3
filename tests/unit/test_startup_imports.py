"""What a process loads to start: the command line, the HTTP server and the runtime import no
client library for a backend they have not been configured to use. Each one costs start-up time
and resident memory in every `steward` process; they are imported where they are first used."""

from __future__ import annotations

import json
import subprocess
import sys

# Packages a default `steward dev` (SQLite, in-memory hot state, local model, API keys) never
# needs: the proxy's HTTP client, Redis, migrations once the schema is at head, JWT, provider
# clients (httpx, and the console tooling its import pulls in), the SDKs used only in tests.
NOT_AT_START = {
    "aiohttp",
    "alembic",
    "anthropic",
    "httpx",
    "jwt",
    "mako",
    "openai",
    "pygments",
    "redis",
    "schemathesis",
}


def top_level_modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    report = "import json, sys; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}


def test_the_cli_server_and_runtime_modules_import_no_optional_client_library() -> None:
    loaded = top_level_modules_after(
        "import steward.cli.main, steward.server.app, steward.runtime\nfrom steward import Steward"
    )
    assert loaded & NOT_AT_START == set()


def test_importing_the_package_alone_loads_neither_the_database_nor_the_web_stack() -> None:
    loaded = top_level_modules_after("import steward")
    assert loaded & {"sqlalchemy", "fastapi", "pydantic", "dbos", "opentelemetry"} == set()


def test_the_command_line_loads_neither_the_database_nor_the_server_before_a_command_runs() -> None:
    loaded = top_level_modules_after("import steward.cli.main")
    assert loaded & {"sqlalchemy", "fastapi", "uvicorn", "dbos", "opentelemetry"} == set()
