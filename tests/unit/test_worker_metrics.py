"""A worker's own `/metrics`: off unless a port is set, refused without the metrics token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from steward.config import Settings
from steward.errors import UserError
from steward.observe.metrics import GatewayMetrics
from steward.server.worker_metrics import serving_worker_metrics


def test_not_served_without_a_port(tmp_path: Path) -> None:
    with serving_worker_metrics(Settings(home=tmp_path), GatewayMetrics().runtime) as port:
        assert port is None


def test_a_port_without_a_token_is_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, worker_metrics_port=0)
    with (
        pytest.raises(UserError, match="STEWARD_METRICS_TOKEN"),
        serving_worker_metrics(settings, GatewayMetrics().runtime),
    ):
        pass


def test_served_to_the_token_only(tmp_path: Path) -> None:
    metrics = GatewayMetrics().runtime
    metrics.run_started("agent-x")
    settings = Settings(home=tmp_path, worker_metrics_port=0, metrics_token="t0ken")
    with serving_worker_metrics(settings, metrics) as port:
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"authorization": "Bearer wrong"}).status_code == 401
        answer = httpx.get(url, headers={"authorization": "Bearer t0ken"})
        assert answer.status_code == 200
        assert 'steward_runs_started_total{agent="agent-x"} 1.0' in answer.text
        assert httpx.post(url, headers={"authorization": "Bearer t0ken"}).status_code == 405
