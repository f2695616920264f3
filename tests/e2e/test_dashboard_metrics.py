"""`/metrics` for the whole runtime, read the way Prometheus reads it: with the dedicated
metrics token (or an admin key), in the text format and in OpenMetrics with trace-id exemplars."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import StewardProcess, free_port
from tests.e2e.dashboard_support import api, start_dashboard_server, wait_for
from tests.integration.test_scale_out import Cluster

TOKEN = "scrape-token-for-tests"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[StewardProcess]:
    process = start_dashboard_server(tmp_path_factory.mktemp("metrics"), upstream)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin_key(server: StewardProcess) -> str:
    return server.create_key("metrics-admin")


@pytest.fixture(scope="module")
def support_run(server: StewardProcess, admin_key: str, upstream: str) -> dict[str, object]:
    UpstreamControl(upstream).script(
        {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 7}}]},
        {"text": "Order 7 is being processed.", "usage": {"input_tokens": 900, "output_tokens": 9}},
    )
    with api(server, admin_key) as client:
        done = client.post(
            "/runs/wait",
            json={"assistant_id": "support", "input": {"message": "And order 7?"}},
        )
        assert done.status_code == 200, done.text
        run_id = done.headers["content-location"].rsplit("/", 1)[-1]
        run = client.get(f"/runs/{run_id}").json()
        trace = client.get(f"/runs/{run_id}/trace").json()["spans"]
    assert run["status"] == "success"
    return {"run": run, "trace_id": trace[0]["trace_id"]}


def scrape(server: StewardProcess, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_the_metrics_token_reads_metrics_and_nothing_else(
    server: StewardProcess, admin_key: str
) -> None:
    assert scrape(server, authorization=f"Bearer {TOKEN}").status_code == 200
    assert scrape(server).status_code == 401
    assert scrape(server, authorization="Bearer not-the-token").status_code == 401
    developer = server.create_key("dev", role="developer")
    assert scrape(server, **{"x-api-key": developer}).status_code == 403
    assert scrape(server, **{"x-api-key": admin_key}).status_code == 200
    # The token is not an API key: it opens no other endpoint.
    runs = httpx.get(f"{server.url}/threads/x", headers={"authorization": f"Bearer {TOKEN}"})
    assert runs.status_code == 401


def test_a_support_run_shows_in_run_tool_http_and_store_metrics(
    server: StewardProcess, support_run: dict[str, object]
) -> None:
    run = support_run["run"]
    assert isinstance(run, dict)
    found = samples(scrape(server, authorization=f"Bearer {TOKEN}").text)
    ended = {"agent": "support", "status": "success", "stop_reason": "completed"}
    assert value(found, "steward_runs_total", **ended) == 1
    assert value(found, "steward_runs_started_total", agent="support") == 1
    assert value(found, "steward_run_steps_count", agent="support") == 1
    assert value(found, "steward_run_steps_sum", agent="support") == run["usage"]["steps"]
    assert (
        value(found, "steward_run_duration_seconds_count", agent="support", status="success") == 1
    )
    spend = value(found, "steward_run_spend_usd_total", tenant="default", agent="support")
    assert spend == pytest.approx(run["usage"]["cost_usd"])
    assert spend > 0
    assert value(found, "steward_tool_call_duration_seconds_count", tool="lookup_order") == 1
    assert (
        value(found, "steward_http_requests_total", method="POST", route="/runs/wait", status="200")
        == 1
    )
    assert (
        value(
            found,
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            gen_ai_operation_name="chat",
            gen_ai_provider_name="openai",
            gen_ai_request_model="gpt-4.1-mini",
        )
        == 2
    )
    assert value(found, "steward_workers") == 1
    assert value(found, "steward_queue_depth") == 0
    assert value(found, "steward_approvals_pending") == 0
    assert ("steward_webhook_delivery_attempts_total", frozenset()) in found


def test_refusals_and_unauthenticated_answers_are_counted_by_route(
    server: StewardProcess,
) -> None:
    limited = server.create_key("limited", **{"rate-per-minute": "1", "burst": "1"})
    statuses = [
        httpx.get(f"{server.url}/threads/none", headers={"x-api-key": limited}).status_code
        for _ in range(3)
    ]
    assert statuses.count(429) == 2
    found = samples(scrape(server, authorization=f"Bearer {TOKEN}").text)
    assert value(found, "steward_rate_limit_refusals_total", scope="API key") == 2
    # Refused before routing: the template is unknown, the status is not.
    assert (
        value(found, "steward_http_requests_total", method="GET", route="unmatched", status="429")
        == 2
    )


def test_openmetrics_carries_the_runs_trace_id_as_an_exemplar(
    server: StewardProcess, support_run: dict[str, object]
) -> None:
    answer = scrape(
        server,
        authorization=f"Bearer {TOKEN}",
        accept="application/openmetrics-text; version=1.0.0",
    )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")
    tool_buckets = [
        line
        for line in answer.text.splitlines()
        if line.startswith("steward_tool_call_duration_seconds_bucket{le=")
        and 'tool="lookup_order"' in line
        and "# {" in line
    ]
    assert tool_buckets, "no exemplar on the tool call histogram"
    assert f'trace_id="{support_run["trace_id"]}"' in tool_buckets[0]
    model_buckets = [
        line
        for line in answer.text.splitlines()
        if line.startswith("gen_ai_client_operation_duration_seconds_bucket{")
        and f'trace_id="{support_run["trace_id"]}"' in line
    ]
    assert model_buckets, "no exemplar of the run's model calls"


def test_sandbox_execs_and_states_are_measured(server: StewardProcess, admin_key: str) -> None:
    with api(server, admin_key) as client:
        answered = client.post(
            "/runs/wait", json={"assistant_id": "sandboxed", "input": {"code": "print(6 * 7)"}}
        )
    assert answered.status_code == 200, answered.text
    assert answered.json()["tool"]["stdout"] == "42\n"
    found = samples(scrape(server, authorization=f"Bearer {TOKEN}").text)
    execs = {
        dict(labels)["backend"]: count
        for (name, labels), count in found.items()
        if name == "steward_sandbox_exec_duration_seconds_count"
    }
    # Two commands in the agent's own sandbox, one per run_code call in the run's code sandbox.
    assert sum(execs.values()) == 4, execs
    assert value(found, "steward_sandbox_creates_total") == 2
    states = {
        dict(labels)["state"]: count
        for (name, labels), count in found.items()
        if name == "steward_sandboxes"
    }
    assert sum(states.values()) == 2, states


def test_failed_webhook_deliveries_are_counted(server: StewardProcess, admin_key: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    with api(server, admin_key) as client:
        done = client.post(
            "/runs/wait",
            json={"assistant_id": "notebook", "input": {"text": "hooked"}, "webhook": nobody},
        )
    assert done.status_code == 200, done.text

    def delivered_twice() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        found = samples(scrape(server, authorization=f"Bearer {TOKEN}").text)
        return found if value(found, "steward_webhook_delivery_attempts_total") >= 2 else None

    found = wait_for(delivered_twice, "two webhook attempts")
    assert value(found, "steward_webhook_delivery_attempts_total") == 2
    assert value(found, "steward_webhook_delivery_failures_total") == 2


def test_a_worker_serves_the_metrics_of_the_runs_it_executes(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, None)
    worker_port = free_port()
    cluster.env.update(
        STEWARD_METRICS_TOKEN=TOKEN,
        STEWARD_WORKER_METRICS_PORT=str(worker_port),
    )
    try:
        cluster.serve()
        cluster.worker(0)
        with httpx.Client(
            base_url=cluster.url, headers={"x-api-key": cluster.key()}, timeout=60
        ) as client:
            done = client.post(
                "/runs/wait", json={"assistant_id": "notebook", "input": {"text": "scaled"}}
            )
            assert done.status_code == 200, done.text
        worker_url = f"http://127.0.0.1:{worker_port}/metrics"
        assert httpx.get(worker_url).status_code == 401
        on_worker = samples(
            httpx.get(worker_url, headers={"authorization": f"Bearer {TOKEN}"}).text
        )
        on_server = samples(
            httpx.get(f"{cluster.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
        )
    finally:
        cluster.stop()
    ended = {"agent": "notebook", "status": "success", "stop_reason": "completed"}
    assert value(on_worker, "steward_runs_total", **ended) == 1
    assert value(on_worker, "steward_tool_call_duration_seconds_count", tool="record_step") == 1
    assert value(on_server, "steward_runs_total", **ended) == 0  # the server executed nothing
    assert value(on_server, "steward_workers") == 1  # but sees the fleet in the database
