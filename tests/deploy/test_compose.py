"""deploy/compose.yaml, validated by the real `docker compose config` (Compose v2's own
loader and schema; it needs no engine): services, the migration job first, health checks,
volumes, and Phoenix only in the `traces` profile."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.deploy.tools import ROOT, run, tool

COMPOSE = ROOT / "deploy" / "compose.yaml"


def config(*extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "STEWARD_"))}
    env["POSTGRES_PASSWORD"] = "secret"
    out = run(
        tool("docker-compose"), "-f", str(COMPOSE), *extra, "config", "--format", "json", env=env
    )
    return dict(json.loads(out))


def test_compose_v2_validates_the_file() -> None:
    version = run(tool("docker-compose"), "version", "--short").strip()
    assert int(version.lstrip("v").split(".")[0]) >= 2
    services = config()["services"]
    assert sorted(services) == ["api", "migrate", "postgres", "redis", "worker"]


def test_every_steward_service_waits_for_the_migration_to_succeed() -> None:
    services = config()["services"]
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_stores_health_checks_and_volumes() -> None:
    loaded = config()
    services = loaded["services"]
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["worker"]["command"] == ["worker"]
    url = services["api"]["environment"]["STEWARD_DATABASE_URL"]
    assert url == "postgresql://steward:secret@postgres:5432/steward"
    assert services["api"]["environment"]["STEWARD_REDIS_URL"] == "redis://redis:6379/0"
    assert {"postgres-data", "steward-home"} <= set(loaded["volumes"])
    init = [v for v in services["postgres"]["volumes"] if v["target"].endswith("initdb.d")]
    assert init and (ROOT / "deploy" / "postgres-init" / "01-pgvector.sql").exists()


def test_phoenix_runs_only_with_the_traces_profile() -> None:
    services = config("--profile", "traces")["services"]
    assert services["phoenix"]["image"].startswith("arizephoenix/phoenix")
    assert services["phoenix"]["profiles"] == ["traces"]


def test_a_missing_password_is_refused() -> None:
    done = subprocess.run(
        [tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"],
        env={k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr
