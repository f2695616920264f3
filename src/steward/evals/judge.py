"""The anchored LLM judge: a rubric with graded anchor examples, the reference answer, temperature
0, and n samples whose agreement is reported. Its calls go through Steward's gateway, so they are
priced, traced and held to the suite's judge budget like any other model call.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from steward.evals.cases import JudgeConfig
from steward.models.budget import SpendScope
from steward.models.gateway import Gateway
from steward.models.types import Message, ModelRequest

JUDGE_AGENT = "steward-eval-judge"

SYSTEM_TEMPLATE = """You are a strict grader of answers given by a customer-facing AI agent.
Grade the candidate answer against the rubric on an integer scale from 1 (worst) to {scale} \
(best). Use the reference answer as the ground truth for facts. The graded examples show what \
each score means: grade the candidate consistently with them.

Rubric:
{rubric}

Graded examples:
{anchors}

Reply with one JSON object and nothing else: {{"score": <integer 1-{scale}>, "reason": \
"<one sentence>"}}"""

USER_TEMPLATE = """Question:
{question}

Reference answer:
{reference}

Candidate answer:
{answer}"""

_SCORE = re.compile(r'"score"\s*:\s*(\d+)')


@dataclass(frozen=True)
class Verdict:
    score: int | None  # the median of the valid samples; None if none was valid
    passed: bool
    samples: list[int | None]
    agreement: float  # share of samples that equal the modal score
    reason: str
    cost_usd: float


def judge_messages(
    config: JudgeConfig, rubric: str, question: str, reference: str | None, answer: str
) -> tuple[Message, Message]:
    """The exact messages a judge model is sent."""
    anchors = "\n".join(
        f"- Answer: {json.dumps(a.answer, ensure_ascii=False)}\n  Score: {a.score}"
        + (f" ({a.why})" if a.why else "")
        for a in config.anchors
    )
    system = SYSTEM_TEMPLATE.format(scale=config.scale, rubric=rubric, anchors=anchors or "(none)")
    user = USER_TEMPLATE.format(
        question=question, reference=reference or "(none given)", answer=answer
    )
    return Message("system", system), Message("user", user)


def parse_score(text: str, scale: int) -> tuple[int | None, str]:
    """The score a judge reply gives, and its reason; (None, why) when it gives none in range."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is not None:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("score"), int):
            score = data["score"]
            reason = str(data.get("reason", ""))
            return (score, reason) if 1 <= score <= scale else (None, f"score {score} off scale")
    loose = _SCORE.search(text)
    if loose is not None and 1 <= int(loose.group(1)) <= scale:
        return int(loose.group(1)), ""
    return None, f"unreadable judge reply: {text[:120]!r}"


class AnchoredJudge:
    def __init__(self, gateway: Gateway, config: JudgeConfig, *, tenant_id: str, budget_id: str):
        self.gateway = gateway
        self.config = config
        # One budget for the whole suite run: the gateway refuses a call that would pass it.
        self.scope = SpendScope(
            tenant_id=tenant_id,
            run_id=f"eval-judge:{budget_id}",
            agent=JUDGE_AGENT,
            run_cap_usd=config.max_cost_usd,
        )

    async def grade(
        self, rubric: str, question: str, reference: str | None, answer: str
    ) -> Verdict:
        messages = judge_messages(self.config, rubric, question, reference, answer)
        request = ModelRequest(
            model=self.config.model,
            messages=messages,
            max_tokens=self.config.max_tokens,
            temperature=0.0,
        )
        samples: list[int | None] = []
        reasons: list[str] = []
        cost = 0.0
        for _ in range(self.config.samples):
            response, priced = await self.gateway.chat(request, self.scope, model=self.config.model)
            cost += priced.usd
            score, reason = parse_score(response.content, self.config.scale)
            samples.append(score)
            reasons.append(reason)
        return _verdict(samples, reasons, self.config.pass_score, cost)


def _verdict(
    samples: list[int | None], reasons: list[str], pass_score: int, cost: float
) -> Verdict:
    valid = [s for s in samples if s is not None]
    if not valid:
        return Verdict(None, False, samples, 0.0, reasons[0] if reasons else "", cost)
    _modal, count = Counter(valid).most_common(1)[0]
    score = int(statistics.median_low(valid))
    reason = next((r for s, r in zip(samples, reasons, strict=True) if s == score and r), "")
    return Verdict(score, score >= pass_score, samples, count / len(samples), reason, cost)
