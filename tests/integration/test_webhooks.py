"""Signed webhooks out through a real server: Standard Webhooks signatures (verified with the
`standardwebhooks` package), retries with backoff, every attempt recorded and exposed,
delivery resumed after a crash, and SSRF targets refused before a run is accepted."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from steward.config import Settings
from steward.webhooks.dispatcher import WebhookConfig
from steward.webhooks.signing import signed_headers
from steward.webhooks.targets import WebhookTargetRefused, is_refused, parse_networks, resolve
from tests.conftest import StewardProcess, free_port, make_process
from tests.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"steward-webhook-test-secret-32b!").decode()
PROBLEMS = "https://steward.dev/problems/"
QUICK = {"steps": 2}


def _env(**extra: str) -> dict[str, str]:
    return {
        "STEWARD_WEBHOOK_SECRET": SECRET,
        "STEWARD_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "STEWARD_WEBHOOK_BACKOFF_BASE_S": "0.2",
        "STEWARD_WEBHOOK_BACKOFF_CAP_S": "0.5",
        "STEWARD_WEBHOOK_TIMEOUT_S": "2",
        **extra,
    }


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    process = make_process(tmp_path_factory.mktemp("webhooks"), **_env())
    process.start()
    yield process
    process.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    chosen = WebhookReceiver(free_port())
    chosen.start()
    yield chosen
    chosen.stop()


def _verified(received: bytes, headers: dict[str, str]) -> dict[str, object]:
    payload = Webhook(SECRET).verify(received, headers)
    assert isinstance(payload, dict)
    return payload


def _deliveries(server: StewardProcess, key: str, run_id: str) -> dict[str, object]:
    response = httpx.get(f"{server.url}/runs/{run_id}/webhooks", headers={"x-api-key": key})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _wait_state(server: StewardProcess, key: str, run_id: str, state: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        delivery = _deliveries(server, key, run_id)
        if delivery["state"] == state:
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"delivery never reached {state}: {delivery}")


# -- signatures and targets, without a server ----------------------------------------------------


def test_signed_headers_verify_with_the_standard_webhooks_package() -> None:
    body = b'{"type":"run.success"}'
    headers = signed_headers(SECRET, "msg_1", int(time.time()), body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers) == {"type": "run.success"}
    tampered = headers | {"webhook-id": "msg_2"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, tampered)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:a00:1::",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert is_refused(ipaddress.ip_address(address), [])


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "1.1.1.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_refused(ipaddress.ip_address(address), [])


def test_an_explicitly_allowed_network_is_exempt() -> None:
    allowed = parse_networks(["127.0.0.0/8"])
    assert not is_refused(ipaddress.ip_address("127.0.0.5"), allowed)
    assert is_refused(ipaddress.ip_address("::1"), allowed)
    assert is_refused(ipaddress.ip_address("10.0.0.1"), allowed)


async def test_resolution_checks_every_address_and_pins_the_first() -> None:
    with pytest.raises(WebhookTargetRefused, match="non-public"):
        await resolve("http://localhost:8080/x", [])
    pinned = await resolve(
        "http://localhost:8080/x?a=1", parse_networks(["127.0.0.0/8", "::1/128"])
    )
    assert pinned.address.is_loopback
    assert pinned.host_header == "localhost:8080"
    assert pinned.pinned_url.endswith(":8080/x?a=1")
    for bad in ("ftp://example.com/", "http:///nohost", "http://user:pw@example.com/"):
        with pytest.raises(WebhookTargetRefused):
            await resolve(bad, [])


def test_webhook_secrets_never_show_in_settings_or_config_reprs() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    tenant_secret = "whsec_" + base64.b64encode(b"t" * 32).decode()
    settings = Settings(webhook_secret=secret, webhook_tenant_secrets={"acme": tenant_secret})
    config = WebhookConfig.from_settings(settings)
    assert secret not in repr(settings) and secret not in str(settings)
    assert secret not in repr(config) and tenant_secret not in repr(config)
    default, acme = config.secret_for("other"), config.secret_for("acme")
    assert default is not None and default.get_secret_value() == secret
    assert acme is not None and acme.get_secret_value() == tenant_secret


# -- through a server ----------------------------------------------------------------------------


async def test_a_background_runs_result_is_posted_signed_and_retried_until_accepted(
    hooked: StewardProcess, receiver: WebhookReceiver
) -> None:
    key = hooked.create_key("hooks")
    receiver.statuses = [500, 503]
    async with get_client(url=hooked.url, api_key=key) as client:
        thread = await client.threads.create()
        run = await client.runs.create(
            thread["thread_id"], "multistep", input=QUICK, webhook=receiver.url
        )
    got = receiver.wait_for(3)
    assert [r.path for r in got] == ["/hooks/steward"] * 3
    assert len({r.headers["webhook-id"] for r in got}) == 1  # one message, retried
    assert all(r.body == got[0].body for r in got)
    payload = _verified(got[-1].body, got[-1].headers)
    assert payload["type"] == "run.success"
    data = payload["data"]
    assert isinstance(data, dict)
    assert data["run_id"] == run["run_id"]
    assert data["output"] == {"results": [0, 1]}
    delivery = _wait_state(hooked, key, run["run_id"], "delivered")
    history = delivery["history"]
    assert isinstance(history, list)
    assert [a["status_code"] for a in history] == [500, 503, 200]
    assert [a["attempt"] for a in history] == [1, 2, 3]
    assert history[0]["error"] == "HTTP 500"
    assert delivery["url"] == receiver.url


def test_a_failed_run_is_reported_too(hooked: StewardProcess, receiver: WebhookReceiver) -> None:
    key = hooked.create_key("hooks-failed")
    created = httpx.post(
        f"{hooked.url}/runs",
        json={"assistant_id": "broken", "input": {}, "webhook": receiver.url},
        headers={"x-api-key": key},
    )
    assert created.status_code == 200, created.text
    got = receiver.wait_for(1)
    payload = _verified(got[0].body, got[0].headers)
    assert payload["type"] == "run.error"


def test_the_payload_timestamp_is_rfc_3339_with_a_utc_offset(
    hooked: StewardProcess, receiver: WebhookReceiver
) -> None:
    key = hooked.create_key("hooks-timestamp")
    created = httpx.post(
        f"{hooked.url}/runs",
        json={"assistant_id": "broken", "input": {}, "webhook": receiver.url},
        headers={"x-api-key": key},
    )
    assert created.status_code == 200, created.text
    got = receiver.wait_for(1)
    payload = _verified(got[0].body, got[0].headers)
    stamp = payload["timestamp"]
    assert isinstance(stamp, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp), stamp
    moment = datetime.fromisoformat(stamp)
    assert moment.utcoffset() == timedelta(0)
    data = payload["data"]
    assert isinstance(data, dict)
    # The same instant and the same form as the run's own times inside `data`.
    assert moment == datetime.fromisoformat(str(data["ended_at"] or data["updated_at"]))


def test_webhooks_give_up_after_the_configured_attempts(tmp_path: Path) -> None:
    process = make_process(tmp_path, **_env(STEWARD_WEBHOOK_MAX_ATTEMPTS="2"))
    unreachable = f"http://127.0.0.1:{free_port()}/nobody-listens"
    process.start()
    try:
        key = process.create_key("give-up")
        created = httpx.post(
            f"{process.url}/runs",
            json={"assistant_id": "multistep", "input": QUICK, "webhook": unreachable},
            headers={"x-api-key": key},
        )
        delivery = _wait_state(process, key, created.json()["run_id"], "failed")
        history = delivery["history"]
        assert isinstance(history, list)
        assert len(history) == 2
        assert all(a["status_code"] is None and "Connect" in a["error"] for a in history)
    finally:
        process.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9000/x",
        "http://10.0.0.8/hook",
        "http://localhost6.invalid-steward-test/hook",
        "ftp://127.0.0.1/x",
        "http://user:secret@127.0.0.1/x",
    ],
)
def test_non_public_or_malformed_targets_are_refused_before_the_run_starts(
    hooked: StewardProcess, url: str
) -> None:
    key = hooked.create_key("ssrf")
    response = httpx.post(
        f"{hooked.url}/runs",
        json={"assistant_id": "multistep", "input": QUICK, "webhook": url},
        headers={"x-api-key": key},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEMS + "webhook-target-refused"


def test_loopback_targets_are_refused_unless_allowed(tmp_path: Path) -> None:
    process = make_process(tmp_path, STEWARD_WEBHOOK_SECRET=SECRET)
    process.start()
    try:
        key = process.create_key("strict")
        response = httpx.post(
            f"{process.url}/runs",
            json={"assistant_id": "multistep", "webhook": "http://127.0.0.1:9/x"},
            headers={"x-api-key": key},
        )
        assert response.status_code == 422
        assert response.json()["type"] == PROBLEMS + "webhook-target-refused"
        assert "127.0.0.1" in response.json()["detail"]
    finally:
        process.stop()


def test_a_webhook_without_a_configured_secret_is_refused(fresh_server: StewardProcess) -> None:
    fresh_server.start()
    key = fresh_server.create_key("no-secret")
    response = httpx.post(
        f"{fresh_server.url}/runs",
        json={"assistant_id": "multistep", "webhook": "https://example.com/hook"},
        headers={"x-api-key": key},
    )
    assert response.status_code == 422
    assert response.json()["type"] == PROBLEMS + "webhook-not-configured"


def test_pending_deliveries_resume_after_a_crash(tmp_path: Path) -> None:
    receiver = WebhookReceiver(free_port())
    process = make_process(tmp_path, **_env(STEWARD_WEBHOOK_BACKOFF_CAP_S="1"))
    process.start()
    try:
        key = process.create_key("crash")
        created = httpx.post(
            f"{process.url}/runs",
            json={"assistant_id": "multistep", "input": QUICK, "webhook": receiver.url},
            headers={"x-api-key": key},
        )
        run_id = created.json()["run_id"]
        deadline = time.monotonic() + 30
        while True:  # the receiver is down: attempts fail and are recorded
            history = _deliveries(process, key, run_id)["history"]
            assert isinstance(history, list)
            if len(history) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert history and history[0]["status_code"] is None
        process.kill()
        receiver.start()
        process.start()
        got = receiver.wait_for(1)
        payload = _verified(got[0].body, got[0].headers)
        data = payload["data"]
        assert isinstance(data, dict) and data["run_id"] == run_id
        delivery = _wait_state(process, key, run_id, "delivered")
        history = delivery["history"]
        assert isinstance(history, list)
        assert history[-1]["status_code"] == 200
        assert all(a["status_code"] is None for a in history[:-1])
        assert json.loads(got[0].body)["data"]["status"] == "success"
    finally:
        receiver.stop()
        process.stop()
