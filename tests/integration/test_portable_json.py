"""Bodies are interoperable JSON (RFC 7493) or refused before anything is stored: non-finite
numbers and lone surrogates get a 400 problem on every endpoint, on SQLite and PostgreSQL, and
rows that already hold a lone surrogate still read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy

from tests.conftest import StewardProcess, make_process

PROBLEM_JSON = "application/problem+json"
INVALID_JSON = "https://steward.dev/problems/invalid-json"
RUN = {"assistant_id": "support", "input": {"message": "Where is my order 42?"}}
# Written as raw text: Python's json module would happily produce and accept all of these.
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]
LONE_SURROGATES = ['"\\udfff"', '"\\ud800"', '"a\\udc00b"']


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StewardProcess, str]]:
    """A server on each store, with the URL of its database for direct checks."""
    home = tmp_path_factory.mktemp(f"portable-{request.param}")
    if request.param == "postgresql":
        database_url = _module_postgres_database(request)
        process = make_process(home, STEWARD_DATABASE_URL=database_url)
    else:
        process = make_process(home)
        database_url = f"sqlite:///{process.home / 'steward.db'}"
    process.start()
    try:
        yield process, database_url
    finally:
        process.stop()


def _module_postgres_database(request: pytest.FixtureRequest) -> str:
    import uuid

    import psycopg

    from tests.conftest import POSTGRES_ADMIN_URL

    name = f"steward_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def http(backend: tuple[StewardProcess, str]) -> Iterator[httpx.Client]:
    server, _ = backend
    key = server.create_key("portable")
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def thread_id(http: httpx.Client) -> str:
    created = http.post("/threads", json={"metadata": {"purpose": "witness"}})
    assert created.status_code == 200, created.text
    return str(created.json()["thread_id"])


def execute(database_url: str, sql: str, **params: str) -> int:
    """Run one statement on the server's database directly, past the API; the first column."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(sqlalchemy.text(sql), params)
            return int(result.scalar() or 0) if result.returns_rows else 0
    finally:
        engine.dispose()


def count_rows(database_url: str, table: str) -> int:
    return execute(database_url, f"SELECT count(*) FROM {table}")


def assert_invalid_json(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == INVALID_JSON and body["status"] == 400, body
    return body


def post_raw(
    http: httpx.Client, path: str, content: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return http.post(
        path, content=content, headers={"content-type": "application/json", **(headers or {})}
    )


def run_body(where: str, value: str) -> str:
    """A valid run body with `value` (raw JSON text) placed at `where`."""
    if where == "metadata":
        return f'{{"assistant_id": "support", "input": {json.dumps(RUN["input"])}, ' + (
            f'"metadata": {{"n": {value}}}}}'
        )
    return f'{{"assistant_id": "support", "input": {{"message": "hi", "extra": [{value}]}}}}'


@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("where", ["metadata", "input"])
def test_non_finite_number_is_refused_before_any_run_is_created(
    http: httpx.Client, backend: tuple[StewardProcess, str], thread_id: str, value: str, where: str
) -> None:
    _, database_url = backend
    before = count_rows(database_url, "runs")
    for path in (
        f"/threads/{thread_id}/runs",
        f"/threads/{thread_id}/runs/wait",
        f"/threads/{thread_id}/runs/stream",
        "/runs",
        "/runs/wait",
        "/runs/stream",
    ):
        detail = assert_invalid_json(post_raw(http, path, run_body(where, value)))["detail"]
        assert value.lstrip("-")[:3] in detail, detail
    assert count_rows(database_url, "runs") == before


@pytest.mark.parametrize("value", ["NaN", "1e999"])
def test_idempotent_retry_of_a_refused_body_creates_no_run(
    http: httpx.Client, backend: tuple[StewardProcess, str], value: str
) -> None:
    _, database_url = backend
    before = count_rows(database_url, "runs")
    headers = {"idempotency-key": f"portable-{value}"}
    for _ in range(2):
        assert_invalid_json(post_raw(http, "/runs", run_body("metadata", value), headers))
    assert count_rows(database_url, "runs") == before


@pytest.mark.parametrize("value", [*NOT_FINITE, *LONE_SURROGATES])
def test_thread_bodies_with_unportable_json_are_refused(
    http: httpx.Client, backend: tuple[StewardProcess, str], thread_id: str, value: str
) -> None:
    _, database_url = backend
    threads = count_rows(database_url, "threads")
    assert_invalid_json(post_raw(http, "/threads", f'{{"metadata": {{"n": {value}}}}}'))
    assert_invalid_json(post_raw(http, "/threads/search", f'{{"metadata": {{"n": {value}}}}}'))
    patched = http.patch(
        f"/threads/{thread_id}",
        content=f'{{"metadata": {{"n": {value}}}}}',
        headers={"content-type": "application/json"},
    )
    assert_invalid_json(patched)
    assert_invalid_json(post_raw(http, f"/threads/{thread_id}/state", f'{{"values": [{value}]}}'))
    assert count_rows(database_url, "threads") == threads
    read = http.get(f"/threads/{thread_id}")
    assert read.status_code == 200, read.text
    thread = read.json()
    assert thread["metadata"] == {"purpose": "witness"} and thread["values"] == {}


@pytest.mark.parametrize("value", LONE_SURROGATES)
@pytest.mark.parametrize("where", ["metadata", "input"])
def test_lone_surrogate_is_refused_before_any_run_is_created(
    http: httpx.Client, backend: tuple[StewardProcess, str], value: str, where: str
) -> None:
    _, database_url = backend
    before = count_rows(database_url, "runs")
    for path in ("/runs", "/runs/wait"):
        assert (
            "surrogate"
            in assert_invalid_json(post_raw(http, path, run_body(where, value)))["detail"]
        )
    assert count_rows(database_url, "runs") == before


def test_a_lone_surrogate_in_a_key_is_refused(http: httpx.Client) -> None:
    assert_invalid_json(post_raw(http, "/threads", '{"metadata": {"\\udfff": 1}}'))


def test_surrogate_pairs_and_large_finite_numbers_are_accepted(http: httpx.Client) -> None:
    created = post_raw(http, "/threads", '{"metadata": {"smile": "\\ud83d\\ude00", "n": 1e308}}')
    assert created.status_code == 200, created.text
    assert created.json()["metadata"] == {"smile": "\U0001f600", "n": 1e308}


def test_rows_already_holding_a_lone_surrogate_still_read(
    http: httpx.Client, backend: tuple[StewardProcess, str]
) -> None:
    """Stored before the edge refused them (PostgreSQL's json type checks only the escape's
    syntax): reads and the tenant's search keep working."""
    _, database_url = backend
    thread = http.post("/threads", json={"metadata": {"note": "placeholder"}}).json()
    run = http.post("/runs/wait", json=RUN)
    run_id = run.headers["content-location"].rsplit("/", 1)[-1]
    execute(
        database_url,
        'UPDATE threads SET metadata = :meta, "values" = :values WHERE id = :id',
        meta='{"note": "bad \\udfff end"}',
        values='{"v": ["\\ud800"]}',
        id=thread["thread_id"],
    )
    execute(
        database_url,
        "UPDATE runs SET metadata = :meta WHERE id = :id",
        meta='{"m": "\\udc00"}',
        id=run_id,
    )

    read = http.get(f"/threads/{thread['thread_id']}")
    assert read.status_code == 200, read.text
    assert read.json()["metadata"] == {"note": "bad \ufffd end"}
    assert read.json()["values"] == {"v": ["\ufffd"]}
    state = http.get(f"/threads/{thread['thread_id']}/state")
    assert state.status_code == 200 and state.json()["values"] == {"v": ["\ufffd"]}
    found = http.post("/threads/search", json={"limit": 1000})
    assert found.status_code == 200, found.text
    assert thread["thread_id"] in [t["thread_id"] for t in found.json()]
    got = http.get(f"/runs/{run_id}")
    assert got.status_code == 200 and got.json()["metadata"] == {"m": "\ufffd"}


@pytest.mark.parametrize("value", ["NaN", "1e999", '"\\udfff"'])
def test_the_proxy_refuses_unportable_json_in_the_providers_shape(
    http: httpx.Client, value: str
) -> None:
    messages = '[{"role": "user", "content": "hi"}]'
    content = f'{{"model": "local", "temperature": {value}, "messages": {messages}}}'
    response = post_raw(http, "/v1/chat/completions", content)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "invalid_request_error"
