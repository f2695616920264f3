"""Bad requests get an RFC 9457 problem with a precise status and a stable `type`, never a 500,
and never reach a model: the runs on the witness thread they aim at stay as they were.
"""

from __future__ import annotations

import re
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.config import Settings
from tests.conftest import StewardProcess, make_process

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPES = "https://steward.dev/problems/"
ORDER_QUESTION = {"message": "Where is my order 42?"}
MIB = 1024 * 1024


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == PROBLEM_TYPES + kind, body
    assert body["status"] == status
    assert body["title"]
    return body


@pytest.fixture(scope="module")
def http(server: StewardProcess, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"x-api-key": api_key}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(server: StewardProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def witness(http: httpx.Client) -> dict[str, Any]:
    """A thread of the default tenant with one finished support run; bad requests aim at it."""
    thread = http.post("/threads", json={"metadata": {"purpose": "witness"}}).json()
    answered = http.post(
        f"/threads/{thread['thread_id']}/runs/wait",
        json={"assistant_id": "support", "input": ORDER_QUESTION},
    )
    assert answered.status_code == 200, answered.text
    (run,) = http.get(f"/threads/{thread['thread_id']}/runs").json()
    assert run["status"] == "success"
    return {"thread_id": thread["thread_id"], "run": run, "output": answered.json()}


@pytest.fixture
def runs_url(witness: dict[str, Any]) -> str:
    return f"/threads/{witness['thread_id']}/runs/wait"


@pytest.fixture(autouse=True)
def no_run_is_created(http: httpx.Client, witness: dict[str, Any]) -> Iterator[None]:
    """Every case here is rejected before a run exists, so before any model call."""
    before = http.get(f"/threads/{witness['thread_id']}/runs").json()
    yield
    after = http.get(f"/threads/{witness['thread_id']}/runs").json()
    assert [run["run_id"] for run in after] == [run["run_id"] for run in before]
    assert [run["status"] for run in after] == ["success"]


def valid_run() -> dict[str, Any]:
    return {"assistant_id": "support", "input": ORDER_QUESTION}


def create_key_with_id(server: StewardProcess, name: str, **options: str) -> tuple[str, str]:
    """Create a key through the CLI and return (key id, secret)."""
    flags = [f"--{option}={value}" for option, value in options.items()]
    printed = server.cli("keys", "create", "--name", name, *flags)
    key_id = re.search(r"created key ([0-9a-f-]{36})", printed)
    assert key_id is not None, printed
    return key_id.group(1), printed.strip().splitlines()[-1]


def raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """A GET with header values sent byte for byte (httpx refuses surrounding whitespace)."""
    parts = urllib.parse.urlsplit(url)
    connection = HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("GET", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("content-type", "")
    finally:
        connection.close()


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- 401 ---------------------------------------------------------------------------------------


def test_request_without_a_key_is_unauthenticated(anonymous: httpx.Client, runs_url: str) -> None:
    response = anonymous.post(runs_url, json=valid_run())

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_malformed_key_is_unauthenticated(anonymous: httpx.Client, runs_url: str) -> None:
    response = anonymous.post(runs_url, json=valid_run(), headers={"x-api-key": "not-a-key"})

    assert_problem(response, 401, "unauthenticated")


def test_well_formed_but_unknown_key_is_unauthenticated(
    anonymous: httpx.Client, runs_url: str
) -> None:
    unknown = f"stw_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"

    response = anonymous.post(runs_url, json=valid_run(), headers={"x-api-key": unknown})

    assert_problem(response, 401, "unauthenticated")


def test_revoked_key_is_unauthenticated(
    server: StewardProcess, anonymous: httpx.Client, witness: dict[str, Any], runs_url: str
) -> None:
    key_id, secret = create_key_with_id(server, "to-revoke")
    thread_url = f"/threads/{witness['thread_id']}"
    assert anonymous.get(thread_url, headers={"x-api-key": secret}).status_code == 200

    server.cli("keys", "revoke", key_id)
    # Revoked from another process (the CLI): the server stops trusting the key it has
    # authenticated within key_cache_ttl_s (through its own API it would be at once).
    time.sleep(Settings.model_fields["key_cache_ttl_s"].default + 0.5)

    assert_problem(anonymous.get(thread_url, headers={"x-api-key": secret}), 401, "unauthenticated")
    response = anonymous.post(runs_url, json=valid_run(), headers={"x-api-key": secret})
    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda key: key + "x", id="extra-trailing-char"),
        pytest.param(lambda key: "x" + key, id="extra-leading-char"),
        pytest.param(lambda key: key[:-1], id="truncated"),
        pytest.param(lambda key: key.replace("_", " _", 1), id="space-inside"),
        pytest.param(lambda key: key.upper(), id="wrong-case"),
        pytest.param(lambda key: f"{key},{key}", id="repeated"),
    ],
)
def test_altered_key_is_unauthenticated(
    anonymous: httpx.Client, api_key: str, runs_url: str, alter: Any
) -> None:
    response = anonymous.post(runs_url, json=valid_run(), headers={"x-api-key": alter(api_key)})

    assert_problem(response, 401, "unauthenticated")


def test_key_padded_with_whitespace_is_the_same_key(
    server: StewardProcess, api_key: str, witness: dict[str, Any]
) -> None:
    # Whitespace around a field value is not part of it (RFC 9110 §5.5).
    thread_url = f"/threads/{witness['thread_id']}"

    assert raw_get(server.url, thread_url, {"x-api-key": f"  {api_key}\t "})[0] == 200
    status, content_type = raw_get(server.url, thread_url, {"x-api-key": f"  {api_key}x "})
    assert (status, content_type) == (401, PROBLEM_JSON)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_bearer_token_authenticates_like_x_api_key(
    anonymous: httpx.Client, api_key: str, witness: dict[str, Any], scheme: str
) -> None:
    response = anonymous.get(
        f"/threads/{witness['thread_id']}", headers={"authorization": f"{scheme} {api_key}"}
    )

    assert response.status_code == 200
    assert response.json()["thread_id"] == witness["thread_id"]


def test_key_under_another_authorization_scheme_is_unauthenticated(
    anonymous: httpx.Client, api_key: str, runs_url: str
) -> None:
    response = anonymous.post(
        runs_url, json=valid_run(), headers={"authorization": f"Basic {api_key}"}
    )

    assert_problem(response, 401, "unauthenticated")


# -- 403 ---------------------------------------------------------------------------------------


def test_viewer_key_may_read_but_not_start_or_cancel_runs(
    server: StewardProcess, anonymous: httpx.Client, witness: dict[str, Any], runs_url: str
) -> None:
    viewer = {"x-api-key": server.create_key("viewer", role="viewer")}
    thread_id, run_id = witness["thread_id"], witness["run"]["run_id"]

    assert anonymous.get(f"/threads/{thread_id}", headers=viewer).status_code == 200
    assert anonymous.get(f"/threads/{thread_id}/runs/{run_id}", headers=viewer).status_code == 200
    assert anonymous.post("/assistants/search", json={}, headers=viewer).status_code == 200

    assert_problem(anonymous.post(runs_url, json=valid_run(), headers=viewer), 403, "forbidden")
    assert_problem(
        anonymous.post(f"/threads/{thread_id}/runs", json=valid_run(), headers=viewer),
        403,
        "forbidden",
    )
    assert_problem(anonymous.post("/runs/wait", json=valid_run(), headers=viewer), 403, "forbidden")
    assert_problem(
        anonymous.post(f"/threads/{thread_id}/runs/{run_id}/cancel", headers=viewer),
        403,
        "forbidden",
    )


# -- 404 ---------------------------------------------------------------------------------------


def test_unknown_route_is_not_found(http: httpx.Client) -> None:
    assert_problem(http.get("/no/such/route"), 404, "not-found")


def test_unknown_assistant_is_not_found(http: httpx.Client, runs_url: str) -> None:
    body = assert_problem(
        http.post(runs_url, json={"assistant_id": "no-such-agent", "input": {}}), 404, "not-found"
    )
    assert "no-such-agent" in body["detail"]
    assert_problem(http.get("/assistants/no-such-agent"), 404, "not-found")


def test_unknown_thread_is_not_found(http: httpx.Client) -> None:
    thread_id = "no-such-thread"

    assert_problem(http.get(f"/threads/{thread_id}"), 404, "not-found")
    assert_problem(http.get(f"/threads/{thread_id}/runs"), 404, "not-found")
    assert_problem(http.post(f"/threads/{thread_id}/runs/wait", json=valid_run()), 404, "not-found")


def test_unknown_run_is_not_found(http: httpx.Client, witness: dict[str, Any]) -> None:
    run_id = "00000000-0000-4000-8000-000000000000"
    thread_id = witness["thread_id"]

    assert_problem(http.get(f"/runs/{run_id}"), 404, "not-found")
    assert_problem(http.get(f"/threads/{thread_id}/runs/{run_id}"), 404, "not-found")
    assert_problem(http.get(f"/threads/{thread_id}/runs/{run_id}/join"), 404, "not-found")
    assert_problem(http.get(f"/runs/{run_id}/trace"), 404, "not-found")
    assert_problem(http.post(f"/threads/{thread_id}/runs/{run_id}/cancel"), 404, "not-found")


def test_another_tenants_thread_and_run_are_not_found_and_leak_nothing(
    server: StewardProcess, http: httpx.Client, witness: dict[str, Any]
) -> None:
    other = httpx.Client(
        base_url=server.url,
        headers={"x-api-key": server.create_key("other", tenant="other")},
        timeout=30,
    )
    thread_id, run_id = witness["thread_id"], witness["run"]["run_id"]
    reads = [
        ("GET", f"/threads/{thread_id}", "thread", thread_id),
        ("GET", f"/threads/{thread_id}/runs", "thread", thread_id),
        ("GET", f"/threads/{thread_id}/runs/{run_id}", "run", run_id),
        ("GET", f"/threads/{thread_id}/runs/{run_id}/join", "run", run_id),
        ("GET", f"/runs/{run_id}", "run", run_id),
        ("GET", f"/runs/{run_id}/trace", "run", run_id),
        ("POST", f"/threads/{thread_id}/runs/{run_id}/cancel", "run", run_id),
        ("POST", f"/threads/{thread_id}/runs/wait", "thread", thread_id),
    ]
    with other:
        for method, path, what, ident in reads:
            json_body = valid_run() if path.endswith("/wait") else None
            response = other.request(method, path, json=json_body)
            body = assert_problem(response, 404, "not-found")
            # Exactly what an id that never existed gets: no hint that it exists elsewhere.
            assert body == {
                "type": PROBLEM_TYPES + "not-found",
                "title": "Not found",
                "status": 404,
                "detail": f"{what} {ident!r} does not exist",
                "instance": path,
            }
            for secret in ("Where is my order", "shipped", "support", "witness", "default"):
                assert secret not in response.text

    # ...and the owner still sees its run untouched by the attempted cancel.
    assert http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == "success"


# -- 413 ---------------------------------------------------------------------------------------


def test_body_over_one_mib_with_content_length_is_too_large(
    http: httpx.Client, runs_url: str
) -> None:
    padding = "x" * MIB
    response = http.post(runs_url, json={"assistant_id": "support", "input": {"message": padding}})

    assert int(response.request.headers["content-length"]) > MIB
    assert_problem(response, 413, "payload-too-large")


def test_chunked_body_over_one_mib_is_too_large(http: httpx.Client, runs_url: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"assistant_id": "support", "input": {"message": "'
        for _ in range(17):
            yield b"x" * 65_536
        yield b'"}}'

    response = http.post(runs_url, content=chunks(), headers={"content-type": "application/json"})

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")


# -- 415 ---------------------------------------------------------------------------------------


def test_text_plain_body_is_an_unsupported_media_type(http: httpx.Client, runs_url: str) -> None:
    response = http.post(
        runs_url,
        content=b'{"assistant_id": "support", "input": {"message": "hi"}}',
        headers={"content-type": "text/plain"},
    )

    assert_problem(response, 415, "unsupported-media-type")


def test_form_encoded_body_is_an_unsupported_media_type(http: httpx.Client, runs_url: str) -> None:
    response = http.post(runs_url, data={"assistant_id": "support", "message": "hi"})

    assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert_problem(response, 415, "unsupported-media-type")


# -- 422 ---------------------------------------------------------------------------------------


def test_empty_message_fails_the_agent_input_model(http: httpx.Client, runs_url: str) -> None:
    body = assert_problem(
        http.post(runs_url, json={"assistant_id": "support", "input": {"message": ""}}),
        422,
        "invalid-input",
    )
    assert [error["loc"] for error in body["errors"]] == [["message"]]


def test_missing_input_field_fails_the_agent_input_model(http: httpx.Client, runs_url: str) -> None:
    body = assert_problem(
        http.post(runs_url, json={"assistant_id": "support", "input": {}}), 422, "invalid-input"
    )
    assert body["errors"][0]["type"] == "missing"


@pytest.mark.parametrize(
    "agent_input",
    [{"message": 42}, {"message": ["hi"]}, "Where is my order 42?", [ORDER_QUESTION], None],
    ids=["number", "list", "bare-string", "list-of-inputs", "null"],
)
def test_wrongly_typed_input_fails_the_agent_input_model(
    http: httpx.Client, runs_url: str, agent_input: Any
) -> None:
    response = http.post(runs_url, json={"assistant_id": "support", "input": agent_input})

    assert_problem(response, 422, "invalid-input")


@pytest.mark.parametrize(
    "body",
    [
        {"assistant_id": 5, "input": ORDER_QUESTION},
        {"input": ORDER_QUESTION},
        {"assistant_id": "support", "input": ORDER_QUESTION, "stream_mode": "everything"},
        {"assistant_id": "support", "input": ORDER_QUESTION, "metadata": ["not", "a", "dict"]},
        ["support", ORDER_QUESTION],
        "support",
    ],
    ids=["assistant-number", "assistant-missing", "stream-mode", "metadata-list", "array", "str"],
)
def test_body_of_the_wrong_shape_fails_the_request_schema(
    http: httpx.Client, runs_url: str, body: Any
) -> None:
    assert_problem(http.post(runs_url, json=body), 422, "validation-error")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("after_seconds", 5),
        ("command", {"goto": "somewhere"}),
        ("checkpoint_id", "abc"),
    ],
)
def test_unsupported_run_option_is_refused_not_ignored(
    http: httpx.Client, runs_url: str, field: str, value: Any
) -> None:
    body = assert_problem(
        http.post(runs_url, json={**valid_run(), field: value}), 422, "validation-error"
    )
    assert field in body["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("webhook", "kind"),
    [
        ("https://example.com/hook", "webhook-not-configured"),
        ("", "validation-error"),
        ("https://example.com/" + "x" * 2100, "validation-error"),
    ],
)
def test_a_webhook_that_could_never_be_sent_is_refused(
    http: httpx.Client, runs_url: str, webhook: str, kind: str
) -> None:
    assert_problem(http.post(runs_url, json={**valid_run(), "webhook": webhook}), 422, kind)


@pytest.mark.parametrize("depth", [100, 500, 900, *range(930, 970, 2), 990])
def test_deeply_nested_metadata_is_refused_before_the_run_starts(
    http: httpx.Client, runs_url: str, depth: int
) -> None:
    # Near Python's recursion limit a body still parses but cannot be echoed back: every depth
    # must be refused up front (422) or at parsing (400), never accepted and never a 500.
    content = (
        '{"assistant_id": "support", "input": {"message": "hi"}, '
        f'"metadata": {{"a": {nested_list(depth)}}}}}'
    )
    response = http.post(runs_url, content=content, headers={"content-type": "application/json"})

    if response.status_code == 400:
        assert_problem(response, 400, "bad-request")
    else:
        body = assert_problem(response, 422, "validation-error")
        assert body["errors"][0]["loc"][:2] == ["body", "metadata"]


def test_deeply_nested_input_is_refused_before_the_run_starts(
    http: httpx.Client, runs_url: str
) -> None:
    content = (
        f'{{"assistant_id": "support", "input": {{"message": "hi", "extra": {nested_list(200)}}}}}'
    )
    response = http.post(runs_url, content=content, headers={"content-type": "application/json"})

    assert_problem(response, 422, "validation-error")


@pytest.mark.parametrize(
    "query",
    ["offset=1e20", "offset=100000000000000000000", "offset=-1", "limit=0", "limit=1e20"],
)
def test_paging_beyond_its_bounds_is_invalid_not_a_server_error(
    http: httpx.Client, witness: dict[str, Any], query: str
) -> None:
    response = http.get(f"/threads/{witness['thread_id']}/runs?{query}")

    assert_problem(response, 422, "validation-error")
    searched = http.post("/threads/search", json={"offset": 10**20})
    assert_problem(searched, 422, "validation-error")


def test_a_sandbox_backend_this_server_does_not_offer_is_the_callers_choice_not_a_fault(
    http: httpx.Client,
) -> None:
    """The unisolated `process` backend is off unless enabled: asking for it is a 422 (pick
    another), while no backend at all on the host would be the server's 503."""
    response = http.post("/v1/sandboxes", json={"backend": "process"})

    body = assert_problem(response, 422, "sandbox-backend-refused")
    assert "process" in body["detail"]


def test_ten_thousand_levels_of_nesting_is_a_bad_request(http: httpx.Client, runs_url: str) -> None:
    content = f'{{"assistant_id": "support", "input": {nested_list(10_000)}}}'
    response = http.post(runs_url, content=content, headers={"content-type": "application/json"})

    assert_problem(response, 400, "bad-request")


def test_deeply_nested_thread_metadata_is_refused(http: httpx.Client) -> None:
    content = f'{{"metadata": {{"a": {nested_list(200)}}}}}'
    response = http.post("/threads", content=content, headers={"content-type": "application/json"})

    assert_problem(response, 422, "validation-error")


# -- 400 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"assistant_id": "support", "input": ', b"{'assistant_id': 'support'}", b"\xff\xfe{}"],
    ids=["truncated", "single-quotes", "not-utf8"],
)
def test_malformed_json_is_a_bad_request(http: httpx.Client, runs_url: str, content: bytes) -> None:
    response = http.post(runs_url, content=content, headers={"content-type": "application/json"})

    assert_problem(response, 400, "malformed-json")


# -- 405 ---------------------------------------------------------------------------------------


def test_wrong_method_is_not_allowed(http: httpx.Client, runs_url: str) -> None:
    response = http.put(runs_url, json=valid_run())

    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "POST"
    assert_problem(http.put("/assistants/search", json={}), 405, "method-not-allowed")


# -- 409 ---------------------------------------------------------------------------------------


def test_second_run_on_a_busy_thread_is_a_conflict(http: httpx.Client) -> None:
    thread_id = http.post("/threads", json={}).json()["thread_id"]
    first = http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "multistep", "input": {"steps": 40, "sleep_s": 0.1}},
    ).json()
    try:
        body = assert_problem(
            http.post(f"/threads/{thread_id}/runs/wait", json=valid_run()), 409, "thread-busy"
        )
        assert first["run_id"] in body["detail"]
        assert_problem(
            http.post(f"/threads/{thread_id}/runs", json=valid_run()), 409, "thread-busy"
        )
        assert [run["run_id"] for run in http.get(f"/threads/{thread_id}/runs").json()] == [
            first["run_id"]
        ]
    finally:
        http.post(f"/threads/{thread_id}/runs/{first['run_id']}/cancel", params={"wait": True})


def test_creating_an_existing_thread_is_a_conflict(
    http: httpx.Client, witness: dict[str, Any]
) -> None:
    response = http.post("/threads", json={"thread_id": witness["thread_id"]})

    assert_problem(response, 409, "thread-exists")


# -- 429 ---------------------------------------------------------------------------------------


@pytest.fixture
def rate_limited_server(tmp_path: Path) -> Iterator[StewardProcess]:
    process = make_process(tmp_path, STEWARD_RATE_LIMIT_PER_MINUTE="3")
    process.start()
    yield process
    process.stop()


def test_burst_over_the_rate_limit_is_told_when_to_retry(
    rate_limited_server: StewardProcess,
) -> None:
    headers = {"x-api-key": rate_limited_server.create_key("limited")}
    with httpx.Client(base_url=rate_limited_server.url, headers=headers, timeout=30) as client:
        burst = [client.post("/assistants/search", json={}) for _ in range(3)]
        assert [response.status_code for response in burst] == [200, 200, 200]

        limited = client.post("/assistants/search", json={})
        body = assert_problem(limited, 429, "rate-limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 20  # 3 a minute: one every 20 s
        assert "retry" in body["detail"]

        # Being limited is not a free pass for run-creating requests either.
        thread_id = "00000000-0000-4000-8000-000000000000"
        response = client.post(f"/threads/{thread_id}/runs/wait", json=valid_run())
        assert_problem(response, 429, "rate-limited")

    # Another key has its own bucket.
    other = {"x-api-key": rate_limited_server.create_key("other")}
    response = httpx.post(f"{rate_limited_server.url}/assistants/search", json={}, headers=other)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"x" * (1024 * 1024 + 1), {"content-type": "application/json"}),
        (b"plain", {"content-type": "text/plain"}),
    ],
    ids=["malformed", "oversized", "wrong-type"],
)
def test_authentication_comes_before_any_look_at_the_body(
    anonymous: httpx.Client, runs_url: str, content: bytes, headers: dict[str, str]
) -> None:
    assert_problem(
        anonymous.post(runs_url, content=content, headers=headers), 401, "unauthenticated"
    )
