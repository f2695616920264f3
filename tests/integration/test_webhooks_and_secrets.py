"""Signed webhook ingress (Standard Webhooks and Stripe style) and secrets that never leak:
replayed, stale and tampered deliveries are refused; a run that reads a secret and tries every
way out with it leaves no plaintext in the database files, logs, traces, stream or outputs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from steward.security.webhooks import sign_standard, sign_stripe
from tests.conftest import ROOT, STEWARD, StewardProcess, make_process

SECRET_VALUE = "crm-" + uuid.uuid4().hex  # unique, so any occurrence on disk is a leak


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    process = make_process(tmp_path_factory.mktemp("hooks"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(server: StewardProcess) -> Iterator[httpx.Client]:
    key = server.create_key("admin", tenant="alpha")
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=30) as c:
        yield c


def _hook(admin: httpx.Client, scheme: str) -> dict[str, Any]:
    made = admin.post("/admin/hooks", json={"agent": "hook_sink", "scheme": scheme})
    assert made.status_code == 201, made.text
    return dict(made.json())


def _standard(
    server: StewardProcess, hook: dict[str, Any], body: bytes, **kw: Any
) -> httpx.Response:
    delivery = kw.get("delivery", "msg_" + uuid.uuid4().hex)
    stamp = kw.get("stamp", int(time.time()))
    signature = kw.get("signature") or sign_standard(
        kw.get("secret", hook["secret"]), delivery, stamp, kw.get("signed_body", body)
    )
    headers = {
        "webhook-id": delivery,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    if signature == "omit":
        del headers["webhook-signature"]
    return httpx.post(f"{server.url}{hook['url']}", content=body, headers=headers, timeout=30)


def _wait_run(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    for _ in range(200):
        run = admin.get(f"/runs/{run_id}").json()
        if run["status"] not in ("pending", "running"):
            return dict(run)
        time.sleep(0.05)
    raise AssertionError("run did not finish")


def test_signed_delivery_starts_a_run_with_untrusted_input(
    server: StewardProcess, admin: httpx.Client
) -> None:
    hook = _hook(admin, "standard")
    body = json.dumps({"type": "invoice.paid", "amount": 12}).encode()
    accepted = _standard(server, hook, body, delivery="msg_first")
    assert accepted.status_code == 202, accepted.text
    run = _wait_run(admin, accepted.json()["run_id"])
    assert run["output"] == {"type": "invoice.paid", "extra": {"amount": 12}}
    assert run["metadata"]["untrusted_input"] is True and run["metadata"]["source"] == "webhook"
    replay = _standard(server, hook, body, delivery="msg_first")
    assert replay.status_code == 409 and replay.json()["type"].endswith("/webhook-replayed")
    kinds = [r["kind"] for r in admin.get("/admin/audit/export").json()["records"]]
    assert "webhook.accepted" in kinds and "webhook.replayed" in kinds


@pytest.mark.parametrize(
    ("attack", "status", "kind"),
    [
        ("stale", 401, "webhook-stale"),
        ("future", 401, "webhook-stale"),
        ("tampered_body", 401, "webhook-signature-invalid"),
        ("wrong_secret", 401, "webhook-signature-invalid"),
        ("v0_signature", 401, "webhook-signature-invalid"),
        ("no_signature", 400, "webhook-malformed"),
        ("bad_timestamp", 400, "webhook-malformed"),
    ],
)
def test_bad_standard_deliveries_are_refused(
    server: StewardProcess, admin: httpx.Client, attack: str, status: int, kind: str
) -> None:
    hook = _hook(admin, "standard")
    body = b'{"type": "x"}'
    now = int(time.time())
    options: dict[str, Any] = {
        "stale": {"stamp": now - 301},
        "future": {"stamp": now + 301},
        "tampered_body": {"signed_body": b'{"type": "y"}'},
        "wrong_secret": {"secret": "whsec_" + "A" * 43 + "="},
        "v0_signature": {"signature": "v0," + "A" * 44},
        "no_signature": {"signature": "omit"},
        "bad_timestamp": {"stamp": "soon"},
    }[attack]
    response = _standard(server, hook, body, **options)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/" + kind)


def test_rotated_secret_keeps_the_previous_one_valid_for_one_rotation(
    server: StewardProcess, admin: httpx.Client
) -> None:
    hook = _hook(admin, "standard")
    first = hook["secret"]
    second = admin.post(f"/admin/hooks/{hook['id']}/rotate").json()["secret"]
    assert _standard(server, hook, b'{"type": "a"}', secret=first).status_code == 202
    assert _standard(server, hook, b'{"type": "b"}', secret=second).status_code == 202
    admin.post(f"/admin/hooks/{hook['id']}/rotate")
    assert _standard(server, hook, b'{"type": "c"}', secret=first).status_code == 401
    # A sender signing with several secrets at once (space-separated) is accepted.
    stamp, body = int(time.time()), b'{"type": "d"}'
    both = " ".join(sign_standard(s, "m-both", stamp, body) for s in (first, second))
    accepted = _standard(server, hook, body, delivery="m-both", stamp=stamp, signature=both)
    assert accepted.status_code == 202, accepted.text


def test_stripe_style_signatures_replays_and_tampering(
    server: StewardProcess, admin: httpx.Client
) -> None:
    hook = _hook(admin, "stripe")
    body = json.dumps({"id": "evt_" + uuid.uuid4().hex, "type": "charge.succeeded"}).encode()

    def post(payload: bytes, header: str) -> httpx.Response:
        return httpx.post(
            f"{server.url}{hook['url']}",
            content=payload,
            timeout=30,
            headers={"stripe-signature": header, "content-type": "application/json"},
        )

    now = int(time.time())
    assert post(body, sign_stripe(hook["secret"], now, body)).status_code == 202
    replay = post(body, sign_stripe(hook["secret"], now + 1, body))  # fresh signature, same event
    assert replay.status_code == 409
    tampered = post(body.replace(b"succeeded", b"refunded"), sign_stripe(hook["secret"], now, body))
    assert tampered.status_code == 401
    stale = post(body, sign_stripe(hook["secret"], now - 1000, body))
    assert stale.json()["type"].endswith("/webhook-stale")


# -- secrets ---------------------------------------------------------------------------------


def _set_secret(server: StewardProcess, name: str, value: str, tenant: str) -> None:
    subprocess.run(
        [STEWARD, "secrets", "set", name, "--tenant", tenant],
        input=value + "\n",
        cwd=ROOT,
        env=server.env,
        text=True,
        check=True,
        capture_output=True,
    )


def test_secrets_are_used_but_never_leak(server: StewardProcess, admin: httpx.Client) -> None:
    _set_secret(server, "crm_token", SECRET_VALUE, "alpha")
    listed = subprocess.run(
        [STEWARD, "secrets", "list", "--tenant", "alpha"],
        cwd=ROOT,
        env=server.env,
        text=True,
        check=True,
        capture_output=True,
    ).stdout
    assert "crm_token" in listed and SECRET_VALUE not in listed

    seen: list[str] = []
    with admin.stream(
        "POST",
        "/runs/stream",
        json={"assistant_id": "leaky", "input": {}, "stream_mode": ["values", "updates", "custom"]},
    ) as stream:
        seen.extend(stream.iter_lines())
    waited = admin.post("/runs/wait", json={"assistant_id": "leaky", "input": {}})
    failed = admin.post("/runs/wait", json={"assistant_id": "leaky", "input": {"mode": "raise"}})
    reserved = admin.post(
        "/runs/wait",
        json={"assistant_id": "leaky", "input": {"mode": "reserved", "secret": "steward.hook.x.1"}},
    )
    output = waited.json()
    # The tool really used the secret: its digest is the HMAC under the true value.
    expected = hmac.new(SECRET_VALUE.encode(), b"payload", hashlib.sha256).hexdigest()
    assert output["tool"]["digest"] == expected
    assert output["tool"]["echo"] == "[REDACTED:crm_token]"
    assert output["answer"] == "the token is [REDACTED:crm_token]"
    assert output["shown"] == "Secret('crm_token', '********')"
    assert "[REDACTED:crm_token]" in failed.json()["__error__"]["message"]
    assert "no secret named 'steward.hook.x.1'" in reserved.json()["__error__"]["message"]

    run_ids = [r.headers["content-location"].rsplit("/", 1)[1] for r in (waited, failed)]
    traces = [admin.get(f"/runs/{rid}/trace").text for rid in run_ids]
    other = httpx.post(
        f"{server.url}/runs/wait",
        timeout=30,
        headers={"x-api-key": server.create_key("b", tenant="beta")},
        json={"assistant_id": "leaky", "input": {}},
    )
    assert "no secret named 'crm_token'" in other.json()["__error__"]["message"]

    server.stop()  # flush every log and database page to disk before grepping
    try:
        needle = SECRET_VALUE.encode()
        files = [p for p in server.home.rglob("*") if p.is_file()]
        assert any(p.name.endswith(".db") for p in files)
        leaks = [str(p) for p in files if needle in p.read_bytes()]
        assert leaks == [], f"plaintext secret found in {leaks}"
        assert "agent saw secret [REDACTED:crm_token]" in server.log.read_text()
        for text in [*seen, waited.text, failed.text, reserved.text, other.text, *traces]:
            assert SECRET_VALUE not in text
        assert any("[REDACTED:crm_token]" in line for line in seen)
    finally:
        server.start()
    kinds = [r["kind"] for r in admin.get("/admin/audit/export").json()["records"]]
    assert {"secret.set", "secret.accessed", "secret.denied"} <= set(kinds)
