"""Rate limits through a real server, in memory and in Redis: per API key (its own limit or the
default) and per end user (header or body `user`), refused with 429 problem+json + Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import StewardProcess, free_port, make_process
from tests.redis_server import SHARED_REDIS_URL, drop_prefix, unique_prefix

BODY = {"assistant_id": "multistep", "input": {"steps": 1}}


@pytest.fixture(scope="module", params=["memory", "redis"])
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StewardProcess]:
    env = {"STEWARD_USER_RATE_LIMIT_PER_MINUTE": "60", "STEWARD_USER_RATE_LIMIT_BURST": "2"}
    prefix = unique_prefix()
    if request.param == "redis":
        env |= {"STEWARD_REDIS_URL": SHARED_REDIS_URL, "STEWARD_REDIS_PREFIX": prefix}
    process = make_process(tmp_path_factory.mktemp(f"limits-{request.param}"), **env)
    process.start()
    yield process
    process.stop()
    if request.param == "redis":
        asyncio.run(drop_prefix(SHARED_REDIS_URL, prefix))


def _assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://steward.dev/problems/rate-limited"
    assert int(response.headers["retry-after"]) >= 1


def test_a_key_with_its_own_limit_is_refused_after_its_burst(limited: StewardProcess) -> None:
    tight = limited.create_key("tight", **{"rate-per-minute": "6", "burst": "2"})
    other = limited.create_key("other")
    url = f"{limited.url}/threads/none"
    statuses = [httpx.get(url, headers={"x-api-key": tight}).status_code for _ in range(2)]
    assert statuses == [404, 404]
    refused = httpx.get(url, headers={"x-api-key": tight})
    _assert_rate_limited(refused)
    assert 1 <= int(refused.headers["retry-after"]) <= 10  # 6/min: a token every 10 s
    assert "API key" in refused.json()["detail"]
    assert httpx.get(url, headers={"x-api-key": other}).status_code == 404


def test_end_users_of_one_key_have_buckets_of_their_own(limited: StewardProcess) -> None:
    key = limited.create_key("shared-by-users")
    url = f"{limited.url}/threads/none"

    def as_user(user: str) -> httpx.Response:
        return httpx.get(url, headers={"x-api-key": key, "x-steward-user": user})

    assert [as_user("alice").status_code for _ in range(2)] == [404, 404]
    refused = as_user("alice")
    _assert_rate_limited(refused)
    assert "user" in refused.json()["detail"]
    assert as_user("bob").status_code == 404
    assert httpx.get(url, headers={"x-api-key": key}).status_code == 404


def test_the_user_field_of_a_run_counts_against_that_users_bucket(
    limited: StewardProcess,
) -> None:
    key = limited.create_key("body-user")
    headers = {"x-api-key": key}
    body = BODY | {"user": "carol"}
    for _ in range(2):
        assert httpx.post(f"{limited.url}/runs", json=body, headers=headers).status_code == 200
    _assert_rate_limited(httpx.post(f"{limited.url}/runs", json=body, headers=headers))
    # The header names the same user: the bucket is the same one.
    refused = httpx.get(
        f"{limited.url}/threads/none", headers=headers | {"x-steward-user": "carol"}
    )
    _assert_rate_limited(refused)


def test_redis_buckets_are_shared_between_api_servers(tmp_path: Path) -> None:
    """Two servers on one data directory and one Redis draw from one bucket per key."""
    prefix = unique_prefix()
    first = make_process(tmp_path, STEWARD_REDIS_URL=SHARED_REDIS_URL, STEWARD_REDIS_PREFIX=prefix)
    second = StewardProcess(home=first.home, port=free_port(), env=first.env)
    try:
        first.start()
        second.start()
        key = first.create_key("both", **{"rate-per-minute": "6", "burst": "3"})
        got = [
            httpx.get(f"{server.url}/threads/none", headers={"x-api-key": key}).status_code
            for server in (first, second, first, second)
        ]
        assert got == [404, 404, 404, 429]
    finally:
        second.stop()
        first.stop()
        asyncio.run(drop_prefix(SHARED_REDIS_URL, prefix))
