"""The gateway's agent path against the wire-compatible upstream: a streamed call is retried
only until its first text reached the run's stream, never after (which would repeat text)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from steward.errors import ModelStreamError
from steward.models.budget import Budget, SpendScope
from steward.models.budget.memory import MemorySpendCounters
from steward.models.gateway import Gateway
from steward.models.pricing import load_prices
from steward.models.settings import GatewaySettings
from steward.models.types import Message, ModelRequest
from steward.observe.tracing import Tracing
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread

TEXT = "one two three four five six"
SCOPE = SpendScope(tenant_id="t", run_id="r")


@pytest.fixture
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


@pytest.fixture
async def gateway(upstream: str) -> AsyncIterator[Gateway]:
    settings = GatewaySettings.model_validate(
        {
            "deployments": [
                {"name": "up", "provider": "openai", "base_url": f"{upstream}/v1", "api_key": "k"}
            ],
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.001,
        }
    )
    gateway = Gateway(
        settings,
        default_model="up:gpt-4.1-mini",
        budget=Budget(MemorySpendCounters(), settings.caps),
        prices=load_prices(None),
        tracing=Tracing.disabled(),
        ledger=None,
    )
    yield gateway
    await gateway.aclose()


def _request() -> ModelRequest:
    return ModelRequest(model="up:gpt-4.1-mini", messages=(Message("user", "count"),))


async def test_a_stream_broken_after_text_was_emitted_is_not_retried_so_no_text_repeats(
    gateway: Gateway, upstream: str
) -> None:
    control = UpstreamControl(upstream)
    control.script({"text": TEXT}, {"text": TEXT})
    # role chunk + two word deltas reach the run's stream, then the provider errors.
    control.faults(stream_error_after_chunks=3, times=1)
    emitted: list[str] = []

    with pytest.raises(ModelStreamError):
        await gateway.chat(_request(), SCOPE, on_delta=emitted.append)

    assert "".join(emitted) == "one two"
    assert len(control.requests()) == 1


async def test_a_stream_broken_before_any_text_is_retried_and_emits_the_text_once(
    gateway: Gateway, upstream: str
) -> None:
    control = UpstreamControl(upstream)
    control.script({"text": TEXT}, {"text": TEXT})
    control.faults(stream_error_after_chunks=1, times=1)  # only the role chunk went out
    emitted: list[str] = []

    response, _ = await gateway.chat(_request(), SCOPE, on_delta=emitted.append)

    assert "".join(emitted) == response.content == TEXT
    assert len(control.requests()) == 2
