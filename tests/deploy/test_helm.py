"""deploy/helm/steward, linted and rendered by the real helm (v4, scripts/ensure-helm):
Deployments, the migration hook, Service, Ingress, Secret, PDBs, the worker HPA on queue
depth, resource requests and security contexts are in the rendered output."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import ROOT, run, tool

CHART = ROOT / "deploy" / "helm" / "steward"
DB = "database.url=postgresql://steward:pw@db:5432/steward"


def template(*sets: str, kube: str | None = None) -> str:
    argv = [tool("helm"), "template", "rel", str(CHART), "--namespace", "agents"]
    if kube is not None:
        argv += ["--kube-version", kube]
    for value in (DB, *sets):
        argv += ["--set", value]
    return run(*argv)


def render(*sets: str) -> dict[tuple[str, str], dict[str, Any]]:
    objects = [o for o in yaml.safe_load_all(template(*sets)) if o]
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def validate(manifests: str, kube: str, tmp_path: Path) -> str:
    """Strict validation against Kubernetes' own JSON schemas for `kube` (unknown fields,
    wrong types and missing required fields fail), from the kubernetes-validate package."""
    path = tmp_path / f"rendered-{kube}.yaml"
    path.write_text(manifests)
    return run(tool("kubernetes-validate"), "--strict", "--quiet", "-k", kube, str(path))


def container(objects: dict[tuple[str, str], dict[str, Any]], kind: str, name: str) -> Any:
    return objects[(kind, name)]["spec"]["template"]["spec"]["containers"][0]


def test_helm_lint_strict_passes() -> None:
    out = run(tool("helm"), "lint", "--strict", str(CHART), "--set", DB)
    assert "0 chart(s) failed" in out


def test_rendering_without_a_database_is_refused() -> None:
    done = subprocess.run(
        [tool("helm"), "template", "rel", str(CHART)], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "Steward needs PostgreSQL" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("sets", "kube"),
    [
        ((), "1.27.0"),  # the chart's kubeVersion floor
        (("ingress.enabled=true", "secrets.existingSecret=mine"), "1.37.0"),
        (("worker.sandboxes.enabled=true",), "1.30.0"),
        (("worker.sandboxes.enabled=true", "worker.sandboxes.backend=gvisor"), "1.37.0"),
        (("worker.autoscaling.enabled=false", "redis.url=redis://r:6379/0"), "1.37.0"),
    ],
)
def test_rendered_objects_validate_against_the_kubernetes_schemas(
    sets: tuple[str, ...], kube: str, tmp_path: Path
) -> None:
    assert validate(template(*sets, kube=kube), kube, tmp_path).strip() == ""


def test_the_schema_validation_catches_a_wrong_field(tmp_path: Path) -> None:
    wrong = template().replace("  replicas: 2\n", "  replica: 2\n", 1)
    path = tmp_path / "wrong.yaml"
    path.write_text(wrong)
    done = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", "1.37.0", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "'replica' was unexpected" in done.stdout + done.stderr


def test_sandboxes_need_kubernetes_1_30() -> None:
    done = subprocess.run(
        [
            tool("helm"),
            "template",
            "rel",
            str(CHART),
            "--set",
            DB,
            "--kube-version",
            "1.29.0",
            "--set",
            "worker.sandboxes.enabled=true",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "Kubernetes >= 1.30" in done.stderr


def test_service_monitor_scrapes_metrics_with_the_admin_key_secret() -> None:
    objects = render(
        "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.apiKeySecret.name=prom-key"
    )
    monitor = objects[("ServiceMonitor", "rel-steward")]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    assert endpoint["authorization"]["credentials"] == {"name": "prom-key", "key": "api-key"}


def test_default_render_has_every_object() -> None:
    objects = render()
    assert set(objects) == {
        ("Secret", "rel-steward"),
        ("ServiceAccount", "rel-steward"),
        ("Job", "rel-steward-migrate"),
        ("Deployment", "rel-steward-api"),
        ("Deployment", "rel-steward-worker"),
        ("Service", "rel-steward"),
        ("PodDisruptionBudget", "rel-steward-api"),
        ("PodDisruptionBudget", "rel-steward-worker"),
        ("HorizontalPodAutoscaler", "rel-steward-worker"),
    }
    assert container(objects, "Deployment", "rel-steward-api")["args"][0] == "serve"
    assert container(objects, "Deployment", "rel-steward-worker")["args"] == ["worker"]


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_after_its_secret() -> None:
    objects = render()
    job = objects[("Job", "rel-steward-migrate")]
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    secret = objects[("Secret", "rel-steward")]["metadata"]["annotations"]
    assert secret["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["helm.sh/hook-weight"]) < int(notes["helm.sh/hook-weight"])
    assert container(objects, "Job", "rel-steward-migrate")["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    data = objects[("Secret", "rel-steward")]["stringData"]
    assert data == {"STEWARD_DATABASE_URL": "postgresql://steward:pw@db:5432/steward"}


def test_worker_hpa_scales_on_the_external_queue_depth_metric() -> None:
    objects = render()
    hpa = objects[("HorizontalPodAutoscaler", "rel-steward-worker")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rel-steward-worker"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "steward_runs_in_flight"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "48"}
    # With the HPA on, the Deployment leaves its replica count to it.
    assert "replicas" not in objects[("Deployment", "rel-steward-worker")]["spec"]
    # The adapter rule shipped beside the chart serves exactly that metric from the gauges
    # that /metrics exposes (tests/deploy/test_run_gauges.py).
    rules = yaml.safe_load((ROOT / "deploy" / "helm" / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = rules["rules"]["external"]
    assert rule["name"]["as"] == "steward_runs_in_flight"
    assert "steward_queue_depth" in rule["metricsQuery"]
    assert "steward_runs_running" in rule["metricsQuery"]


def test_requests_and_security_contexts() -> None:
    objects = render()
    for kind, name in (
        ("Deployment", "rel-steward-api"),
        ("Deployment", "rel-steward-worker"),
        ("Job", "rel-steward-migrate"),
    ):
        pod = objects[(kind, name)]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        main = pod["containers"][0]
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"cpu", "memory"} <= set(main["resources"]["requests"])
    api = container(objects, "Deployment", "rel-steward-api")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pdbs = objects[("PodDisruptionBudget", "rel-steward-worker")]["spec"]
    assert pdbs["maxUnavailable"] == 1


def test_optional_ingress_and_existing_secret() -> None:
    objects = render(
        "ingress.enabled=true", "ingress.host=agents.example.org", "secrets.existingSecret=mine"
    )
    ingress = objects[("Ingress", "rel-steward")]
    assert ingress["spec"]["rules"][0]["host"] == "agents.example.org"
    assert ("Secret", "rel-steward") not in objects
    env_from = container(objects, "Deployment", "rel-steward-worker")["envFrom"]
    assert env_from == [{"secretRef": {"name": "mine"}}]


def test_sandboxes_make_the_worker_root_in_a_user_namespace_with_sys_admin() -> None:
    objects = render("worker.sandboxes.enabled=true")
    pod = objects[("Deployment", "rel-steward-worker")]["spec"]["template"]["spec"]
    assert pod["hostUsers"] is False
    assert pod["securityContext"]["runAsUser"] == 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    main = pod["containers"][0]
    assert "SYS_ADMIN" in main["securityContext"]["capabilities"]["add"]
    assert main["securityContext"]["procMount"] == "Unmasked"
    assert {"name": "STEWARD_SANDBOX_BACKEND", "value": "bwrap"} in main["env"]
    # The API servers stay unprivileged.
    api = objects[("Deployment", "rel-steward-api")]["spec"]["template"]["spec"]
    assert api["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("autoscaling", ["true", "false"])
def test_worker_replicas_belong_to_exactly_one_owner(autoscaling: str) -> None:
    objects = render(f"worker.autoscaling.enabled={autoscaling}", "worker.replicas=3")
    has_hpa = ("HorizontalPodAutoscaler", "rel-steward-worker") in objects
    spec = objects[("Deployment", "rel-steward-worker")]["spec"]
    assert has_hpa == (autoscaling == "true")
    assert ("replicas" in spec) == (not has_hpa)
