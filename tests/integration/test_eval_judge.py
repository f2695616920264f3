"""The anchored judge against the wire-compatible upstream scripted as the judge model: it agrees
with a person's grades on a labelled set, sends exactly the prompt a real model would get, at
temperature 0, reports the agreement of its samples, and its calls are priced and capped by the
gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from steward.errors import SpendCapExceeded
from steward.evals.cases import Anchor, JudgeConfig
from steward.evals.judge import AnchoredJudge
from steward.models.budget import Budget, SpendCaps
from steward.models.budget.memory import MemorySpendCounters
from steward.models.gateway import Gateway
from steward.models.pricing import load_prices
from steward.models.settings import GatewaySettings
from steward.observe.tracing import Tracing
from steward.upstream.testing import UpstreamControl, run_upstream_in_thread

LABELLED = Path(__file__).parent / "data" / "judge_calibration.jsonl"
RUBRIC = (
    "Correct facts from the reference (status, carrier, date) matter most; an answer that "
    "states a wrong fact scores at most 2; an answer that refuses or deflects scores 1."
)
CONFIG = JudgeConfig(
    model="up:gpt-4.1-mini",
    samples=3,
    pass_score=4,
    anchors=[
        Anchor(
            answer="Order 42 has shipped with DHL, arriving 2026-11-26.", score=5, why="all facts"
        ),
        Anchor(answer="Order 42 has shipped.", score=3, why="true but leaves out carrier and date"),
        Anchor(answer="Order 42 was delivered by UPS.", score=1, why="wrong facts"),
    ],
)


@pytest.fixture
def upstream() -> Iterator[str]:
    with run_upstream_in_thread() as url:
        yield url


async def _gateway(upstream: str) -> Gateway:
    settings = GatewaySettings.model_validate(
        {
            "deployments": [
                {"name": "up", "provider": "openai", "base_url": f"{upstream}/v1", "api_key": "k"}
            ]
        }
    )
    return Gateway(
        settings,
        default_model="up:gpt-4.1-mini",
        budget=Budget(MemorySpendCounters(), SpendCaps()),
        prices=load_prices(None),
        tracing=Tracing.disabled(),
        ledger=None,
    )


@pytest.fixture
async def gateway(upstream: str) -> AsyncIterator[Gateway]:
    gateway = await _gateway(upstream)
    yield gateway
    await gateway.aclose()


def _labelled() -> list[dict[str, object]]:
    return [json.loads(line) for line in LABELLED.read_text().splitlines()]


async def test_the_judge_agrees_with_the_labels_on_at_least_90_percent(
    gateway: Gateway, upstream: str
) -> None:
    items = _labelled()
    assert len(items) >= 30
    control = UpstreamControl(upstream)
    judge = AnchoredJudge(gateway, CONFIG, tenant_id="t", budget_id="calibration")
    agree_pass = agree_score = 0
    agreements = []
    total_cost = 0.0
    for item in items:
        replies = item["judge_replies"]
        assert isinstance(replies, list)
        control.script(*({"text": r} for r in replies))
        verdict = await judge.grade(
            RUBRIC, str(item["question"]), str(item["reference"]), str(item["answer"])
        )
        label = int(str(item["label"]))
        agree_pass += verdict.passed == (label >= CONFIG.pass_score)
        agree_score += verdict.score == label
        agreements.append(verdict.agreement)
        total_cost += verdict.cost_usd
    assert agree_pass / len(items) >= 0.9
    assert (agree_pass, agree_score) == (30, 30)  # the two items the model graded differently
    # One item's three samples split 2-1, which the verdict reports.
    assert sorted(agreements)[0] == pytest.approx(2 / 3)
    assert agreements.count(1.0) == len(items) - 1
    requests = control.requests()
    assert len(requests) == 3 * len(items)
    assert all(r["body"]["temperature"] == 0 for r in requests)
    assert total_cost > 0  # priced by the gateway from the upstream's reported usage


async def test_the_judge_sends_exactly_the_prompt_a_real_model_gets(
    gateway: Gateway, upstream: str
) -> None:
    control = UpstreamControl(upstream)
    control.script({"text": '{"score": 5, "reason": "all facts"}'})
    config = CONFIG.model_copy(update={"samples": 1})
    judge = AnchoredJudge(gateway, config, tenant_id="t", budget_id="prompt")
    verdict = await judge.grade(
        RUBRIC,
        "Where is my order 42?",
        "Order 42 has shipped with DHL and should arrive on 2026-11-26.",
        "It shipped with DHL.",
    )
    assert (verdict.score, verdict.passed, verdict.samples) == (5, True, [5])
    body = control.requests()[0]["body"]
    assert body["model"] == "gpt-4.1-mini"
    assert body["temperature"] == 0
    assert body["messages"] == [
        {
            "role": "system",
            "content": """You are a strict grader of answers given by a customer-facing AI agent.
Grade the candidate answer against the rubric on an integer scale from 1 (worst) to 5 (best). \
Use the reference answer as the ground truth for facts. The graded examples show what each \
score means: grade the candidate consistently with them.

Rubric:
Correct facts from the reference (status, carrier, date) matter most; an answer that states a \
wrong fact scores at most 2; an answer that refuses or deflects scores 1.

Graded examples:
- Answer: "Order 42 has shipped with DHL, arriving 2026-11-26."
  Score: 5 (all facts)
- Answer: "Order 42 has shipped."
  Score: 3 (true but leaves out carrier and date)
- Answer: "Order 42 was delivered by UPS."
  Score: 1 (wrong facts)

Reply with one JSON object and nothing else: {"score": <integer 1-5>, "reason": \
"<one sentence>"}""",
        },
        {
            "role": "user",
            "content": """Question:
Where is my order 42?

Reference answer:
Order 42 has shipped with DHL and should arrive on 2026-11-26.

Candidate answer:
It shipped with DHL.""",
        },
    ]


async def test_the_judge_budget_is_enforced_by_the_gateway(gateway: Gateway, upstream: str) -> None:
    control = UpstreamControl(upstream)
    control.script(*({"text": '{"score": 4, "reason": "ok"}'} for _ in range(50)))
    config = CONFIG.model_copy(update={"samples": 1, "max_cost_usd": 0.002})
    judge = AnchoredJudge(gateway, config, tenant_id="t", budget_id="capped")
    graded = 0
    with pytest.raises(SpendCapExceeded):  # noqa: PT012 - the cap is hit after some calls
        while graded < 50:
            await judge.grade(RUBRIC, "q", "r", "a")
            graded += 1
    assert 0 < graded < 50  # some calls fit the budget, then the gateway refused
    assert len(control.requests()) < 50


async def test_unreadable_replies_make_no_verdict(gateway: Gateway, upstream: str) -> None:
    control = UpstreamControl(upstream)
    control.script({"text": "I would say it is good."}, {"text": '{"score": 9}'})
    judge = AnchoredJudge(
        gateway, CONFIG.model_copy(update={"samples": 2}), tenant_id="t", budget_id="bad"
    )
    verdict = await judge.grade(RUBRIC, "q", "r", "a")
    assert (verdict.score, verdict.passed, verdict.samples) == (None, False, [None, None])
