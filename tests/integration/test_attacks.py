"""Attack suite against a real server: keys, JWTs, roles, other tenants' ids on every endpoint
(enumerated from the app's routes, so a new endpoint is covered or the suite fails), mass
assignment. Every answer is a precise 4xx problem+json, never a 500.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from steward import Steward
from steward.config import Settings
from steward.server.app import create_app
from tests.conftest import StewardProcess, make_process

ISSUER, AUDIENCE = "https://idp.example.test", "steward-api"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def public_pem(signing_key: rsa.RSAPrivateKey) -> bytes:
    return signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, public_pem: bytes) -> Iterator[StewardProcess]:
    tmp = tmp_path_factory.mktemp("attacks")
    (tmp / "jwt.pem").write_bytes(public_pem)
    process = make_process(
        tmp,
        STEWARD_JWT_ALGORITHM="RS256",
        STEWARD_JWT_PUBLIC_KEY_FILE=str(tmp / "jwt.pem"),
        STEWARD_JWT_ISSUER=ISSUER,
        STEWARD_JWT_AUDIENCE=AUDIENCE,
        STEWARD_JWT_LEEWAY_S="5",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def keys(server: StewardProcess) -> dict[str, str]:
    made = {
        role: server.create_key(role, role=role, tenant="alpha")
        for role in ("admin", "developer", "runner", "viewer")
    }
    made["other_admin"] = server.create_key("intruder", role="admin", tenant="beta")
    return made


def client(server: StewardProcess, key: str | None = None) -> httpx.Client:
    headers = {"x-api-key": key} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def assert_problem(
    response: httpx.Response, status: int, kind: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body


def token(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-7",
        "tenant": "alpha",
        "role": "runner",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# -- API keys ----------------------------------------------------------------------------------


def test_missing_revoked_and_padded_keys_get_401(
    server: StewardProcess, keys: dict[str, str]
) -> None:
    with client(server) as anonymous:
        assert_problem(anonymous.post("/assistants/search"), 401, "unauthenticated")
    good = keys["runner"]
    for bad in (
        good + "A",
        good + "=",
        good + "==",
        "A" + good,
        good[:-1],
        good.upper(),
        good.replace("_", "-"),
        "stw_" + "0" * 12 + "_" + "A" * 43,
        "x" * 5000,
    ):
        with client(server, bad) as c:
            body = assert_problem(c.post("/assistants/search"), 401, "unauthenticated")
            assert bad not in json.dumps(body)
    with client(server, keys["admin"]) as admin:
        made = admin.post("/admin/keys", json={"name": "short-lived"}).json()
        assert admin.delete(f"/admin/keys/{made['id']}").status_code == 204
    with client(server, made["secret"]) as revoked:
        assert_problem(revoked.post("/assistants/search"), 401, "unauthenticated")


# -- JWTs ------------------------------------------------------------------------------------


def test_valid_jwt_identifies_tenant_role_and_user(
    server: StewardProcess, signing_key: rsa.RSAPrivateKey
) -> None:
    headers = {"authorization": f"Bearer {token(signing_key)}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        assert c.post("/assistants/search").status_code == 200
        # Runner may run; the run belongs to the token's tenant, whoever the body says it is.
        made = c.post("/threads", json={"metadata": {}, "tenant_id": "beta"})
        assert made.status_code == 200
        assert_problem(c.get("/admin/keys"), 403, "forbidden")


def test_a_jwt_naming_a_tenant_nothing_has_made_yet_can_create_threads_and_runs(
    server: StewardProcess, signing_key: rsa.RSAPrivateKey
) -> None:
    # No key or secret was ever made for this tenant, so no row of it exists yet.
    headers = {"authorization": f"Bearer {token(signing_key, tenant='fresh-from-idp')}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        thread = c.post("/threads", json={"metadata": {}})
        assert thread.status_code == 200, thread.text
        run = c.post(
            f"/threads/{thread.json()['thread_id']}/runs/wait",
            json={"assistant_id": "support", "input": {"message": "Where is my order 42?"}},
        )
        assert run.status_code == 200, run.text
        assert run.json()["tools_used"] == ["lookup_order"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("expired", "expired"),
        ("not_yet_valid", "not valid yet"),
        ("wrong_audience", "another audience"),
        ("wrong_issuer", "another issuer"),
        ("alg_none", "'none' is not accepted"),
        ("hs256_with_public_key", "'HS256' is not accepted"),
        ("other_key", "signature does not verify"),
        ("no_exp", "'exp'"),
        ("no_tenant", "'tenant' claim"),
        ("bad_role", "role must be one of"),
        ("garbage", "not a well-formed JWT"),
        ("no_audience", "lacks the 'aud' claim"),
        ("no_issuer", "lacks the 'iss' claim"),
    ],
)
def test_bad_jwts_are_refused_precisely(
    server: StewardProcess,
    signing_key: rsa.RSAPrivateKey,
    public_pem: bytes,
    case: str,
    expected: str,
) -> None:
    now = int(time.time())
    tokens = {
        "expired": lambda: token(signing_key, exp=now - 60),
        "not_yet_valid": lambda: token(signing_key, nbf=now + 120),
        "wrong_audience": lambda: token(signing_key, aud="someone-else"),
        "wrong_issuer": lambda: token(signing_key, iss="https://evil.test"),
        "alg_none": lambda: (
            _b64({"alg": "none", "typ": "JWT"})
            + "."
            + _b64(
                {
                    "sub": "x",
                    "tenant": "alpha",
                    "role": "admin",
                    "exp": now + 300,
                    "iss": ISSUER,
                    "aud": AUDIENCE,
                }
            )
            + "."
        ),
        # The classic confusion: HMAC keyed with the RSA public key everyone can read.
        "hs256_with_public_key": lambda: _hs256(
            public_pem,
            {
                "sub": "x",
                "tenant": "alpha",
                "role": "admin",
                "exp": now + 300,
                "iss": ISSUER,
                "aud": AUDIENCE,
            },
        ),
        "other_key": lambda: token(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "no_exp": lambda: token(signing_key, exp=None),
        "no_tenant": lambda: token(signing_key, tenant=None),
        "bad_role": lambda: token(signing_key, role="superuser"),
        "garbage": lambda: "not.a.jwt",
        "no_audience": lambda: token(signing_key, aud=None),
        "no_issuer": lambda: token(signing_key, iss=None),
    }
    headers = {"authorization": f"Bearer {tokens[case]()}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        body = assert_problem(c.post("/assistants/search"), 401, "unauthenticated")
    assert expected in body["detail"], body


def _hs256(key: bytes, claims: dict[str, Any]) -> str:
    import hashlib
    import hmac

    signing_input = _b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64(claims)
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def test_auth_failures_are_in_the_audit_log(server: StewardProcess, keys: dict[str, str]) -> None:
    revoked_prefix = keys["viewer"][:17]
    with client(server, keys["viewer"][:-1] + "Z") as c:
        c.post("/assistants/search")
    with client(server, keys["admin"]) as admin:
        export = admin.get("/admin/audit/export").json()
        verified = admin.get("/admin/audit/verify").json()
    failures = [
        json.loads(r["entry"])["data"] for r in export["records"] if r["kind"] == "auth.failure"
    ]
    assert any(revoked_prefix in f["key_prefixes"] for f in failures)
    assert verified["ok"] is True and verified["signed_records"] == verified["records"]


# -- roles -----------------------------------------------------------------------------------


def app_routes() -> list[tuple[str, str]]:
    """Every (method, path) the HTTP app serves, through included routers of any depth."""
    found: set[tuple[str, str]] = set()
    for route in create_app(Settings(), Steward()).routes:
        contexts = getattr(route, "effective_route_contexts", None)
        entries = list(contexts()) if contexts else [route]
        for entry in entries:
            for method in getattr(entry, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, entry.path))
    return sorted(found)


ROUTES = app_routes()
ADMIN_ROUTES = [(m, p) for m, p in ROUTES if p.startswith("/admin")]


def test_route_enumeration_sees_every_router() -> None:
    assert ("POST", "/runs/wait") in ROUTES and ("GET", "/admin/keys") in ROUTES
    assert ("POST", "/hooks/{hook_id}") in ROUTES and len(ROUTES) > 25


@pytest.mark.parametrize("role", ["developer", "runner", "viewer"])
@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_endpoints_refuse_other_roles(
    server: StewardProcess, keys: dict[str, str], role: str, method: str, path: str
) -> None:
    url = re.sub(r"\{[^}]+\}", "anything", path)
    with client(server, keys[role]) as c:
        body = assert_problem(c.request(method, url, json={}), 403, "forbidden")
    assert "admin" in body["detail"]


# -- tenants ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alpha_objects(server: StewardProcess, keys: dict[str, str]) -> dict[str, str]:
    """One of every tenant-scoped object, in tenant alpha."""
    with client(server, keys["admin"]) as admin:
        thread = admin.post("/threads", json={}).json()["thread_id"]
        run = admin.post(
            f"/threads/{thread}/runs", json={"assistant_id": "multistep", "input": {"steps": 1}}
        ).json()
        admin.get(f"/threads/{thread}/runs/{run['run_id']}/join")
        key = admin.post("/admin/keys", json={"name": "alpha-extra"}).json()
        hook = admin.post("/admin/hooks", json={"agent": "hook_sink"}).json()
        created = admin.post("/v1/sandboxes", json={})
        assert created.status_code in (200, 201), created.text
        paused = admin.post("/runs", json={"assistant_id": "approver", "input": {}}).json()
        cron = admin.post(
            "/runs/crons",
            json={"assistant_id": "multistep", "schedule": "0 0 1 1 *", "input": {"steps": 1}},
        )
        assert cron.status_code == 200, cron.text
        batch = admin.post("/v1/batches", json={"agent": "multistep", "items": [{"steps": 1}]})
        assert batch.status_code == 201, batch.text
        approvals: list[dict[str, Any]] = []
        for _ in range(200):
            approvals = admin.get(f"/runs/{paused['run_id']}/approvals").json()
            if approvals:
                break
            time.sleep(0.05)
    return {
        "approval_id": approvals[0]["approval_id"],
        "approval_run_id": paused["run_id"],
        "thread_id": thread,
        "run_id": run["run_id"],
        "key_id": key["id"],
        "hook_id": hook["id"],
        "key_secret": key["secret"],
        "hook_secret": hook["secret"],
        "sandbox_id": created.json()["id"],
        "cron_id": cron.json()["cron_id"],
        "batch_id": batch.json()["batch_id"],
    }


# Path parameters that name a tenant's object. Anything else is a failure until listed here.
TENANT_SCOPED = {
    "thread_id",
    "run_id",
    "key_id",
    "hook_id",
    "approval_id",
    "sandbox_id",
    "cron_id",
    "batch_id",
}
# Routes whose body forbids unknown fields get a valid body of their own.
BODIES = {
    ("POST", "/runs/{run_id}/approvals/{approval_id}"): {"decision": "reject"},
    ("POST", "/v1/sandboxes/{sandbox_id}/exec"): {"command": "true"},
    ("PUT", "/v1/sandboxes/{sandbox_id}/files/content"): {"content": "x"},
    ("POST", "/v1/sandboxes/{sandbox_id}/standby"): {},
    ("POST", "/threads/{thread_id}/runs/crons"): {
        "assistant_id": "multistep",
        "schedule": "0 0 1 1 *",
        "input": {"steps": 1},
    },
}
# `assistant_id` names an agent: code deployed with the server, the same for every tenant;
# `namespace` a subgraph of it. A hosted MCP server (`name`) is not made here (it needs
# `steward mcp deploy`): tests/e2e/test_mcp_hosting.py checks another tenant gets 404 there.
SHARED = {"assistant_id": "multistep", "namespace": "tools", "name": "no-such-server"}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_other_tenants_ids_get_404_and_nothing_leaks(
    server: StewardProcess,
    keys: dict[str, str],
    alpha_objects: dict[str, str],
    method: str,
    path: str,
) -> None:
    params = set(re.findall(r"\{([^}]+)\}", path))
    unknown = params - TENANT_SCOPED - set(SHARED)
    assert not unknown, f"{method} {path}: add {unknown} to the tenant attack table"
    url, decoy = path, path
    if "approval_id" in params:  # the approval belongs to a run of its own
        url = url.replace("{run_id}", alpha_objects["approval_run_id"])
    for name in params & TENANT_SCOPED:
        url = url.replace("{" + name + "}", alpha_objects[name])
        decoy = decoy.replace("{" + name + "}", "decoy-" + name)
    for name, value in SHARED.items():
        url = url.replace("{" + name + "}", value)
        decoy = decoy.replace("{" + name + "}", value)
    # A body valid for every route, so the ownership check (not validation) answers.
    body = {
        "assistant_id": "multistep",
        "input": {"steps": 1},
        "name": "x",
        "agent": "hook_sink",
        "metadata": {},
        "values": {},
    }
    body = BODIES.get((method, path), body)
    query = {"path": "notes.txt"} if "/files" in path else None  # sandbox file routes need one
    with client(server, keys["other_admin"]) as intruder:
        response = intruder.request(method, url, json=body, params=query)
        unknown_response = (
            intruder.request(method, decoy, json=body, params=query) if params else None
        )
    assert response.status_code < 500, response.text
    leaked = [v for v in alpha_objects.values() if v in response.text and v not in url]
    assert not leaked, f"{method} {path} leaked {leaked}"
    if unknown_response is not None and params & TENANT_SCOPED:
        # Indistinguishable from an id that exists nowhere: nothing tells the object exists.
        seen = response.text
        for name in params & TENANT_SCOPED:
            seen = seen.replace(alpha_objects[name], "decoy-" + name)
        seen = seen.replace(alpha_objects["approval_run_id"], "decoy-run_id")
        assert (response.status_code, seen) == (unknown_response.status_code, unknown_response.text)
    if params & TENANT_SCOPED and path.startswith("/hooks/"):
        # Ingress is public and signed: without signature headers the delivery is refused.
        assert_problem(response, 400, "webhook-malformed")
    elif params & TENANT_SCOPED and path.startswith("/ui/"):
        # The dashboard takes a session cookie, not a key: an API key alone is sent to log in
        # (tests/e2e/test_dashboard.py logs in as another tenant and gets 404).
        assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    elif params & TENANT_SCOPED:
        assert_problem(response, 404, "not-found")


# -- mass assignment ---------------------------------------------------------------------------


def test_mass_assignment_is_refused_or_ignored(
    server: StewardProcess, keys: dict[str, str]
) -> None:
    with client(server, keys["admin"]) as admin:
        for extra in ({"tenant_id": "beta"}, {"approved": True}, {"revoked_at": None}):
            assert_problem(admin.post("/admin/keys", json={"name": "k", **extra}), 422)
        assert_problem(admin.patch("/admin/settings", json={"tenant_id": "beta"}), 422)
        assert_problem(
            admin.post("/admin/hooks", json={"agent": "hook_sink", "tenant_id": "beta"}), 422
        )
        thread = admin.post("/threads", json={"tenant_id": "beta", "status": "busy"}).json()
        assert thread["status"] == "idle"
        run = admin.post(
            f"/threads/{thread['thread_id']}/runs",
            json={
                "assistant_id": "multistep",
                "input": {"steps": 1},
                "tenant_id": "beta",
                "approved": True,
                "status": "success",
                "role": "admin",
            },
        ).json()
        assert run["status"] == "pending"
    with client(server, keys["other_admin"]) as beta:
        assert_problem(beta.get(f"/threads/{thread['thread_id']}"), 404)
        assert_problem(beta.get(f"/runs/{run['run_id']}"), 404)
    with client(server, keys["developer"]) as developer:  # no role escalation by key creation
        assert_problem(developer.post("/admin/keys", json={"name": "me", "role": "admin"}), 403)
