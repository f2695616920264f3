"""Bad input generated from the server's own `/openapi.json` (schemathesis): valid and invalid
requests to every operation, authenticated, against a real server. No answer may be a 5xx, and
every status code, media type and JSON body must be one the document describes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from steward import Steward
from steward.config import Settings
from steward.server.app import create_app
from tests.conftest import StewardProcess, make_process

# Examples per operation: ~55 operations keep the whole suite near a minute on 2 busy cores.
MAX_EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    """A server of its own: the fuzzer changes tenant settings and creates keys and hooks."""
    process = make_process(
        tmp_path_factory.mktemp("fuzz"),
        # The fuzzer sends far more than a client would; rate limiting is tested elsewhere.
        STEWARD_RATE_LIMIT_PER_MINUTE="1000000",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin_key(fuzzed_server: StewardProcess) -> str:
    return fuzzed_server.create_key("fuzzer", role="admin")


def _document() -> dict[str, Any]:
    """The document every server serves at /openapi.json (checked against the running one
    below); built in-process so pytest can list one test per operation at collection."""
    return create_app(Settings(), Steward()).openapi()


schema = schemathesis.openapi.from_dict(
    _document(),
    config=SchemathesisConfig.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "deterministic": True},
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


def test_the_fuzzed_document_is_the_one_the_server_serves(fuzzed_server: StewardProcess) -> None:
    served = httpx.get(f"{fuzzed_server.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == _document()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,  # nothing written to the checkout; derandomized runs repeat anyway
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_documented_answers_and_never_a_server_error(
    case: Any, fuzzed_server: StewardProcess, admin_key: str
) -> None:
    headers = {"x-api-key": admin_key}
    response = case.call(base_url=fuzzed_server.url, headers=headers, timeout=30)
    case.validate_response(response, checks=CHECKS, headers=headers)
