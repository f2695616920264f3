"""`POST /v1/embeddings` through a real `steward dev` with the official OpenAI SDK: a gateway
model forwarded to the wire-compatible upstream (priced, capped, retried), and the built-in
`local-minilm` model answered with no key."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from steward.upstream.embeddings_wire import vector
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import StewardProcess, make_process


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardProcess]:
    process = make_process(
        tmp_path_factory.mktemp("embeddings"),
        OPENAI_API_KEY="sk-upstream-openai",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
        STEWARD_GATEWAY=json.dumps({"caps": {"user_daily_usd": 0.000001}, "backoff_base_s": 0.01}),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(proxy: StewardProcess) -> str:
    return proxy.create_key("embeddings")


@pytest.fixture
def control(upstream: str) -> UpstreamControl:
    control = UpstreamControl(upstream)
    control.reset()
    return control


@pytest.fixture
def client(proxy: StewardProcess, key: str) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
    yield sdk
    sdk.close()


def test_gateway_embeddings_reach_the_upstream_and_are_priced(
    proxy: StewardProcess, key: str, client: openai.OpenAI, control: UpstreamControl
) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    # The SDK asks for base64 by default and decodes it.
    result = client.embeddings.create(
        model="openai:text-embedding-3-small", input=["red apple", "green pear"], user=user
    )
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(vector("red apple", 64), abs=1e-6)
    assert result.usage.prompt_tokens == 4
    (sent,) = control.requests()
    assert sent["path"] == "/v1/embeddings"
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-openai"
    totals = httpx.get(
        f"{proxy.url}/spend", params={"group_by": "user"}, headers={"x-api-key": key}
    ).json()["totals"]
    (mine,) = [t for t in totals if t["group"] == user]
    assert mine["calls"] == 1
    assert mine["cost_usd"] == pytest.approx(4 * 0.02 / 1e6)


def test_retryable_upstream_errors_are_retried(
    client: openai.OpenAI, control: UpstreamControl
) -> None:
    control.faults(error_status=503, times=2)
    result = client.embeddings.create(model="openai:text-embedding-3-small", input="again")
    assert len(result.data) == 1
    assert len(control.requests()) == 3


def test_spend_cap_refuses_before_the_upstream_is_called(
    client: openai.OpenAI, control: UpstreamControl
) -> None:
    with pytest.raises(openai.RateLimitError) as error:
        client.embeddings.create(
            model="openai:text-embedding-3-small", input=["word " * 200], user="big-spender"
        )
    body = error.value.body
    assert isinstance(body, dict) and body["code"] == "spend_cap_exceeded"
    assert error.value.response.headers["x-should-retry"] == "false"
    assert control.requests() == []


def test_local_minilm_needs_no_key_and_keeps_meaning(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="local-minilm",
        input=[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The new movie is awesome.",
        ],
    )
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    cos = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    # sentence-transformers' own figures for all-MiniLM-L6-v2 on these sentences.
    assert cos[0] == pytest.approx(0.7553, abs=1e-3)
    assert cos[1] == pytest.approx(-0.0461, abs=1e-3)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "local-minilm"}, 400, "input:"),
        ({"model": "local-minilm", "input": []}, 400, "input:"),
        ({"model": "local-minilm", "input": [1, 2]}, 400, "input:"),
        ({"input": "x"}, 400, "model:"),
        ({"model": "local-minilm", "input": "x", "encoding_format": "hex"}, 400, "encoding_format"),
        (
            {"model": "openai:text-embedding-3-small", "input": "x", "dimensions": 0},
            400,
            "dimensions",
        ),
        ({"model": "nowhere:thing", "input": "x"}, 404, ""),
    ],
)
def test_bad_requests_get_openai_shaped_errors(
    proxy: StewardProcess, key: str, body: dict[str, object], status: int, message: str
) -> None:
    response = httpx.post(f"{proxy.url}/v1/embeddings", json=body, headers={"x-api-key": key})
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_embeddings_need_a_key(proxy: StewardProcess) -> None:
    response = httpx.post(
        f"{proxy.url}/v1/embeddings", json={"model": "local-minilm", "input": "x"}
    )
    assert response.status_code == 401
