"""The gateway's agent path against the wire-compatible upstream: a streamed call is retried
only until its first text reached the run's stream, never after (which would repeat text); a
call with no output limit is sent the one its reservation covers, so a run's cap holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from steward.errors import ModelStreamError, SpendCapExceeded
from steward.models.budget import NANO_USD, Budget, SpendCaps, SpendScope
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
def caps() -> SpendCaps:
    return SpendCaps()


@pytest.fixture
async def gateway(upstream: str, caps: SpendCaps) -> AsyncIterator[Gateway]:
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
        budget=Budget(MemorySpendCounters(), caps),
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


@pytest.mark.parametrize("caps", [SpendCaps(run_usd=0.01)])
async def test_a_call_without_max_tokens_is_sent_the_output_limit_its_reservation_covers(
    gateway: Gateway, upstream: str
) -> None:
    control = UpstreamControl(upstream)
    # The provider may bill the model's whole 32,768-token maximum when no limit is sent.
    control.faults(bill_longest_output=True, default_max_output_tokens=32_768)

    _, cost = await gateway.chat(_request(), SCOPE)
    with pytest.raises(SpendCapExceeded, match=r"for [\d,]+ input tokens and [\d,]+ output"):
        await gateway.chat(_request(), SCOPE)

    (sent,) = [r["body"]["max_completion_tokens"] for r in control.requests()]
    assert 1_000 < sent < 32_768  # what $0.01 pays for at gpt-4.1-mini's output price
    (limit,) = gateway.budget.limits(SCOPE)
    assert await gateway.budget.counters.spent(limit.counter) <= 0.01 * NANO_USD
    assert cost.usd <= 0.01
