"""The gateway under pressure, through the real proxy: 200 concurrent calls against a daily cap
(memory, database and Redis counters), a fault storm with a fallback, and the breaker's cycle."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from steward.upstream.testing import UpstreamControl, run_upstream_in_thread
from tests.conftest import StewardProcess, make_process

REDIS_URL = os.environ.get("STEWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture
def backup() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


_sdk_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    """Each test's SDK clients close their connections when it ends (no unclosed sockets)."""
    yield
    while _sdk_clients:
        _sdk_clients.pop().close()


def _openai(process: StewardProcess, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{process.url}/v1", api_key=key, max_retries=0)
    _sdk_clients.append(client)
    return client


def _start(tmp_path: Path, gateway: dict[str, Any], **env: str) -> StewardProcess:
    process = make_process(tmp_path, STEWARD_GATEWAY=json.dumps(gateway), **env)
    process.start()
    return process


def _spent_by(process: StewardProcess, key: str, user: str) -> tuple[int, float]:
    totals = httpx.get(
        f"{process.url}/spend", params={"group_by": "user"}, headers={"x-api-key": key}
    ).json()["totals"]
    mine = [t for t in totals if t["group"] == user]
    return (mine[0]["calls"], mine[0]["cost_usd"]) if mine else (0, 0.0)


# What each burst's requests ask for, and the user's daily cap (USD) it runs against: the
# upstream bills every answer as the longest the request allows (n choices, each at its output
# limit, or at the model's 32,768-token maximum when the request sets none).
BURSTS: dict[str, tuple[dict[str, Any], float]] = {
    "max_tokens": ({"max_tokens": 50}, 0.0015),
    "n_choices": ({"max_tokens": 50, "n": 8}, 0.0015),
    "no_output_limit": ({}, 0.02),
}


@pytest.mark.slow
@pytest.mark.parametrize("burst", list(BURSTS))
@pytest.mark.parametrize("counters", ["memory", "database", "redis"])
async def test_200_concurrent_calls_never_spend_past_the_users_daily_cap(
    counters: str, burst: str, upstream: str, tmp_path: Path
) -> None:
    shape, cap = BURSTS[burst]
    control = UpstreamControl(upstream)
    control.faults(bill_longest_output=True, default_max_output_tokens=32_768)
    process = _start(
        tmp_path,
        {"spend_counters": counters, "caps": {"user_daily_usd": cap}},
        OPENAI_API_KEY="sk-up",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
        STEWARD_REDIS_PREFIX=f"steward-test-{uuid.uuid4().hex}:",
        **({"STEWARD_REDIS_URL": REDIS_URL} if counters == "redis" else {}),
    )
    try:
        key = process.create_key("cap")
        user = f"u-{uuid.uuid4().hex}"
        client = openai.AsyncOpenAI(base_url=f"{process.url}/v1", api_key=key, max_retries=0)

        async def call(i: int) -> str:
            try:
                await client.chat.completions.create(
                    model="gpt-4.1-mini",
                    messages=[{"role": "user", "content": f"request number {i} please"}],
                    user=user,
                    **shape,
                )
            except openai.RateLimitError as exc:
                body = exc.body if isinstance(exc.body, dict) else {}
                return "capped" if body.get("code") == "spend_cap_exceeded" else "other 429"
            return "ok"

        outcomes = await asyncio.gather(*(call(i) for i in range(200)))
        await client.close()
        calls, spent = _spent_by(process, key, user)
    finally:
        process.stop()

    succeeded = outcomes.count("ok")
    assert succeeded + outcomes.count("capped") == 200
    assert calls == succeeded > 0
    assert spent <= cap
    assert spent / succeeded * 200 > cap  # all 200 would have cost more than the cap
    if not shape:  # the gateway set the output limit it reserved for
        limits = [r["body"].get("max_completion_tokens") for r in control.requests()]
        assert all(isinstance(t, int) and 1 <= t <= 32_768 for t in limits)


def _marker(record: dict[str, Any]) -> str:
    return str(record["body"]["messages"][-1]["content"])


@pytest.mark.slow
async def test_fault_storm_with_a_fallback_keeps_99_percent_and_never_retries_the_unretryable(
    upstream: str, backup: str, tmp_path: Path
) -> None:
    primary_control = UpstreamControl(upstream)
    primary_control.faults(
        probability=0.3,
        seed=7,
        mix=[
            {"error_status": 429, "weight": 2},
            {"error_status": 500, "weight": 2},
            {"error_status": 529, "weight": 2},
            {"latency_s": 1.5, "weight": 1},  # a read timeout at the gateway
            {"truncate_after_chunks": 0, "weight": 2},  # streams cut before the first event
            {"error_status": 429, "error_code": "insufficient_quota", "weight": 1},
        ],
    )
    process = _start(
        tmp_path,
        {
            "deployments": [
                {
                    "name": "primary",
                    "provider": "openai",
                    "base_url": f"{upstream}/v1",
                    "api_key": "k1",
                },
                {
                    "name": "backup",
                    "provider": "openai",
                    "base_url": f"{backup}/v1",
                    "api_key": "k2",
                },
            ],
            "routes": {"storm": ["primary:gpt-4.1-mini", "backup:gpt-4.1-mini"]},
            "read_timeout_s": 0.5,
            "first_token_timeout_s": 0.5,
            "backoff_base_s": 0.005,
            "backoff_max_s": 0.02,
            "breaker_failures": 5,
            "breaker_cooloff_s": 0.3,
        },
    )
    try:
        key = process.create_key("storm")
        client = openai.AsyncOpenAI(base_url=f"{process.url}/v1", api_key=key, max_retries=0)
        semaphore = asyncio.Semaphore(10)

        async def call(i: int) -> bool:
            async with semaphore:
                messages = [{"role": "user", "content": f"storm-{i}"}]
                try:
                    if i % 2:
                        stream = await client.chat.completions.create(
                            model="storm",
                            messages=messages,
                            stream=True,  # type: ignore[arg-type]
                        )
                        text = "".join(
                            [c.choices[0].delta.content or "" async for c in stream if c.choices]
                        )
                    else:
                        done = await client.chat.completions.create(
                            model="storm", messages=messages
                        )  # type: ignore[arg-type]
                        text = done.choices[0].message.content or ""
                except openai.APIError:
                    return False
                return text == f"Echo: storm-{i}"

        results = await asyncio.gather(*(call(i) for i in range(300)))
        await client.close()
        metrics = await asyncio.to_thread(
            lambda: httpx.get(f"{process.url}/metrics", headers={"x-api-key": key}).text
        )
    finally:
        process.stop()

    assert sum(results) / len(results) >= 0.99
    primary = primary_control.requests()
    faults = [r for r in primary if r["fault"]]
    assert len(faults) > 40  # the storm really hit
    by_marker: dict[str, list[dict[str, Any]]] = {}
    for record in primary:
        by_marker.setdefault(_marker(record), []).append(record)
    backup_markers = {_marker(r) for r in UpstreamControl(backup).requests()}
    for marker, records in by_marker.items():
        for position, record in enumerate(records):
            fault = record["fault"] or {}
            if fault.get("error_code") == "insufficient_quota":
                assert position == len(records) - 1, f"{marker} was retried after quota"
                assert marker in backup_markers  # and fell back instead
    retried = [m for m, rs in by_marker.items() if len(rs) > 1]
    assert retried  # retryable failures were retried on the same deployment
    assert re.search(r'steward_gateway_fallbacks_total\{deployment="backup"\} [1-9]', metrics)


@pytest.mark.slow
def test_breaker_opens_after_consecutive_failures_probes_after_cooloff_and_closes(
    upstream: str, backup: str, tmp_path: Path
) -> None:
    primary = UpstreamControl(upstream)
    primary.faults(error_status=500)
    cooloff = 1.5
    process = _start(
        tmp_path,
        {
            "deployments": [
                {
                    "name": "primary",
                    "provider": "openai",
                    "base_url": f"{upstream}/v1",
                    "api_key": "k1",
                },
                {
                    "name": "backup",
                    "provider": "openai",
                    "base_url": f"{backup}/v1",
                    "api_key": "k2",
                },
            ],
            "routes": {"m": ["primary:gpt-4.1-mini", "backup:gpt-4.1-mini"]},
            "backoff_base_s": 0.001,
            "breaker_failures": 5,
            "breaker_cooloff_s": cooloff,
        },
    )
    try:
        key = process.create_key("breaker")
        client = _openai(process, key)

        def ask() -> str:
            done = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            return done.choices[0].message.content or ""

        def transitions() -> dict[str, float]:
            text = httpx.get(f"{process.url}/metrics", headers={"x-api-key": key}).text
            pattern = (
                r"steward_gateway_breaker_transitions_total"
                r'\{deployment="primary",model="gpt-4\.1-mini",state="(\w+)"\} ([\d.]+)'
            )
            found = re.findall(pattern, text)
            return {state: float(value) for state, value in found}

        assert ask() == "Echo: hi"  # 4 failures on primary (1 + 3 retries), then backup
        assert ask() == "Echo: hi"  # the 5th consecutive failure opens the breaker
        assert len(primary.requests()) == 5
        assert transitions() == {"open": 1.0}
        for _ in range(3):
            assert ask() == "Echo: hi"
        assert len(primary.requests()) == 5  # open: primary is not even tried

        time.sleep(cooloff + 0.1)
        assert ask() == "Echo: hi"  # one half-open probe, which fails and re-opens
        assert len(primary.requests()) == 6
        assert transitions() == {"open": 2.0, "half_open": 1.0}

        primary.faults()  # primary recovers
        time.sleep(cooloff + 0.1)
        assert ask() == "Echo: hi"  # the probe succeeds and closes the breaker
        assert ask() == "Echo: hi"
        assert len(primary.requests()) == 8
        assert transitions() == {"open": 2.0, "half_open": 2.0, "closed": 1.0}
    finally:
        process.stop()


def _one_deployment_two_models(upstream: str, **settings: Any) -> dict[str, Any]:
    return {
        "deployments": [
            {"name": "primary", "provider": "openai", "base_url": f"{upstream}/v1", "api_key": "k"}
        ],
        "routes": {"limited": ["primary:gpt-4.1-mini"], "other": ["primary:gpt-4.1"]},
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.002,
        "breaker_failures": 2,
        "breaker_cooloff_s": 60,
        **settings,
    }


def _ask(client: openai.OpenAI, model: str) -> str:
    done = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return done.choices[0].message.content or ""


@pytest.mark.slow
def test_a_rate_limited_model_answers_429_with_retry_after_and_opens_no_breaker(
    upstream: str, tmp_path: Path
) -> None:
    control = UpstreamControl(upstream)
    control.faults(error_status=429)  # with no Retry-After: the gateway must add one
    process = _start(tmp_path, _one_deployment_two_models(upstream))
    try:
        key = process.create_key("limits")
        client = _openai(process, key)
        for _ in range(3):  # 12 upstream 429s: past the breaker's threshold of 2 many times
            with pytest.raises(openai.RateLimitError) as caught:
                _ask(client, "limited")
            assert caught.value.response.headers["retry-after"] == "1"
            assert caught.value.body == {  # the provider's own error, relayed
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        assert len(control.requests()) == 12  # 1 + 3 retries each, none refused by a breaker

        control.faults()  # the rate limit passes
        assert _ask(client, "other") == "Echo: hi"
        assert _ask(client, "limited") == "Echo: hi"
    finally:
        process.stop()


@pytest.mark.slow
def test_endpoint_failures_of_one_model_open_only_that_models_breaker(
    upstream: str, tmp_path: Path
) -> None:
    control = UpstreamControl(upstream)
    control.faults(error_status=500, times=2)
    process = _start(tmp_path, _one_deployment_two_models(upstream))
    try:
        key = process.create_key("breakers")
        client = _openai(process, key)
        with pytest.raises(openai.InternalServerError):
            _ask(client, "limited")  # the second failure opens (primary, gpt-4.1-mini)
        assert len(control.requests()) == 2

        assert _ask(client, "other") == "Echo: hi"  # same deployment, another model: served
        with pytest.raises(openai.APIStatusError) as caught:
            _ask(client, "limited")
        assert caught.value.status_code == 503
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
        assert len(control.requests()) == 3  # the open breaker kept it from the upstream
    finally:
        process.stop()


@pytest.mark.slow
def test_a_breaker_opened_by_a_failure_falls_back_at_once_without_a_backoff(
    upstream: str, backup: str, tmp_path: Path
) -> None:
    # A Retry-After of 30 s would make any backoff on primary wait 30 s.
    UpstreamControl(upstream).faults(error_status=500, retry_after_s=30)
    process = _start(
        tmp_path,
        {
            "deployments": [
                {"name": "primary", "provider": "openai", "base_url": f"{upstream}/v1"},
                {"name": "backup", "provider": "openai", "base_url": f"{backup}/v1"},
            ],
            "routes": {"m": ["primary:gpt-4.1-mini", "backup:gpt-4.1-mini"]},
            "breaker_failures": 1,
        },
    )
    try:
        key = process.create_key("fallback")
        client = _openai(process, key)

        assert _ask(client, "m") == "Echo: hi"

        metrics = httpx.get(f"{process.url}/metrics", headers={"x-api-key": key}).text
        assert 'steward_gateway_fallbacks_total{deployment="backup"} 1.0' in metrics
        assert "steward_gateway_retries_total{" not in metrics  # no backoff was slept
    finally:
        process.stop()


@pytest.mark.slow
def test_an_answer_cut_short_by_one_users_budget_is_not_cached_for_the_others(
    upstream: str, tmp_path: Path
) -> None:
    control = UpstreamControl(upstream)
    control.faults(bill_longest_output=True, default_max_output_tokens=32_768)
    process = _start(
        tmp_path,
        {"response_cache": True, "caps": {"user_daily_usd": 0.02}},
        OPENAI_API_KEY="sk-up",
        STEWARD_OPENAI_BASE_URL=f"{upstream}/v1",
    )
    try:
        key = process.create_key("cache")
        client = _openai(process, key)

        def ask(user: str, **limits: int) -> None:
            client.chat.completions.create(
                model="gpt-4.1-mini",
                messages=[{"role": "user", "content": "the same question"}],
                temperature=0,
                extra_headers={"x-steward-user": user},  # the same body for every user
                **limits,
            )

        ask("first", max_tokens=100)
        ask("second", max_tokens=100)  # a limit of its own: the answer is everyone's
        assert len(control.requests()) == 1
        ask("third")  # no limit: $0.02 buys less than the model's 32,768 tokens
        ask("fourth")
        assert len(control.requests()) == 3
    finally:
        process.stop()
