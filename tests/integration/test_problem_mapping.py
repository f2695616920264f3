"""Each error family answers in its own status class, over real HTTP: a caller's mistake is a
4xx problem, the server's fault (misconfiguration, a sandbox backend this host lacks, a bug such
as an internal validation failure) a 5xx problem that does not explain the server's internals.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from steward.errors import (
    ApiError,
    ConfigError,
    InvalidInput,
    SandboxBackendRefused,
    SandboxError,
    SandboxPathRefused,
    SandboxStateError,
    SandboxUnavailable,
    UnknownModel,
    UserError,
)
from steward.server.problems import install_problem_handlers
from tests.conftest import StewardProcess, free_port, make_process

PROBLEMS = "https://steward.dev/problems/"


class _Internal(BaseModel):
    count: int


def _internal_validation_failure() -> None:
    _Internal.model_validate({"count": "many"})  # our own data, not the request's


RAISED: dict[str, Exception | Callable[[], None]] = {
    "internal-validation": _internal_validation_failure,
    "missing-provider-key": ConfigError(
        "OPENAI_API_KEY is not set; export it or use the local model"
    ),
    "unknown-model": UnknownModel("invalid model string 'x'"),
    "invalid-input": InvalidInput(
        "bad input", [{"loc": ("message",), "msg": "required", "type": "missing"}]
    ),
    "user-error": UserError("give exactly one of command or code"),
    "no-backend": SandboxUnavailable("bwrap is not installed"),
    "backend-refused": SandboxBackendRefused("sandbox backend 'process' is unavailable"),
    "sandbox-gone": SandboxStateError("the sandbox is deleted"),
    "sandbox-path": SandboxPathRefused("'..' is refused"),
    "sandbox-failed": SandboxError("the launcher crashed"),
    "api-error": ApiError(409, "thread-busy", "Conflict", "busy"),
    "bug": RuntimeError("a bug"),
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """An app with only Steward's problem mapping and routes that raise, on a real socket."""
    api = FastAPI()
    install_problem_handlers(api)
    for name, failure in RAISED.items():
        api.add_api_route(f"/{name}", _endpoint(failure), methods=["GET"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _endpoint(failure: Exception | Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def endpoint() -> None:
        if isinstance(failure, Exception):
            raise failure
        failure()

    return endpoint


@pytest.mark.parametrize(
    ("name", "status", "kind"),
    [
        ("internal-validation", 500, "internal-error"),
        ("missing-provider-key", 500, "server-misconfigured"),
        ("bug", 500, "internal-error"),
        ("sandbox-failed", 500, "sandbox-error"),
        ("no-backend", 503, "sandbox-unavailable"),
        ("backend-refused", 422, "sandbox-backend-refused"),
        ("unknown-model", 422, "unknown-model"),
        ("invalid-input", 422, "invalid-input"),
        ("user-error", 422, "invalid-request"),
        ("sandbox-gone", 409, "sandbox-state"),
        ("sandbox-path", 400, "sandbox-path-refused"),
        ("api-error", 409, "thread-busy"),
    ],
)
def test_each_error_family_answers_in_its_status_class(
    base_url: str, name: str, status: int, kind: str
) -> None:
    response = httpx.get(f"{base_url}/{name}", timeout=10)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEMS + kind and body["status"] == status, body


def test_server_faults_do_not_explain_the_servers_configuration(base_url: str) -> None:
    body = httpx.get(f"{base_url}/missing-provider-key", timeout=10).json()
    assert "OPENAI_API_KEY" not in str(body)
    assert "many" not in httpx.get(f"{base_url}/internal-validation", timeout=10).text


def test_invalid_input_lists_what_failed(base_url: str) -> None:
    body = httpx.get(f"{base_url}/invalid-input", timeout=10).json()
    assert body["errors"] == [{"loc": ["message"], "msg": "required", "type": "missing"}]


@pytest.fixture(scope="module")
def misconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    """A server whose `corp` deployment reads its key from a variable nobody set."""
    gateway = {
        "deployments": [
            {
                "name": "corp",
                "provider": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "STEWARD_TEST_UNSET_KEY",
            }
        ]
    }
    process = make_process(
        tmp_path_factory.mktemp("misconfigured"), STEWARD_GATEWAY=json.dumps(gateway)
    )
    process.start()
    yield process
    process.stop()


def test_proxy_tells_a_callers_unknown_model_from_the_servers_missing_key(
    misconfigured: StewardProcess,
) -> None:
    headers = {"x-api-key": misconfigured.create_key("proxy")}
    url = f"{misconfigured.url}/v1/chat/completions"
    messages = [{"role": "user", "content": "hi"}]

    unknown = httpx.post(url, headers=headers, json={"model": "nope:x", "messages": messages})
    missing_key = httpx.post(
        url, headers=headers, json={"model": "corp:gpt-x", "messages": messages}
    )

    assert unknown.status_code == 404, unknown.text
    assert missing_key.status_code == 500, missing_key.text
    error = missing_key.json()["error"]  # the provider's shape, so the SDKs raise their own
    assert error["type"] == "server_error" and "STEWARD_TEST_UNSET_KEY" not in error["message"]
