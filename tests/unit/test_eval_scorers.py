"""The deterministic scorers and the paired tests, as specifications."""

from __future__ import annotations

from math import comb

import pytest

from steward.evals.cases import AnswerChecks, EvalCase
from steward.evals.scorers import ToolCallRecord, score_answer, score_tools
from steward.evals.stats import binomial_tail, mcnemar_exact, sign_test


def _case(**fields: object) -> EvalCase:
    return EvalCase.model_validate({"id": "c", "input": {"message": "m"}, **fields})


def _calls(*names: str, **arguments: object) -> list[ToolCallRecord]:
    return [ToolCallRecord(name, dict(arguments)) for name in names]


@pytest.mark.parametrize(
    ("mode", "called", "passes"),
    [
        ("strict", ("a", "b"), True),
        ("strict", ("b", "a"), False),
        ("unordered", ("b", "a"), True),
        ("unordered", ("a",), False),
        ("subset", ("a",), True),
        ("subset", ("a", "c"), False),
        ("superset", ("a", "b", "c"), True),
        ("superset", ("a", "c"), False),
    ],
)
def test_tool_selection_modes(mode: str, called: tuple[str, ...], passes: bool) -> None:
    case = _case(expected_tools=[{"name": "a"}, {"name": "b"}], tool_match=mode)
    assert score_tools(case, _calls(*called)).passed is passes


def test_argument_match_exact_subset_and_per_argument_override() -> None:
    expected = [{"name": "t", "arguments": {"id": 4, "body": "zip"},
                 "argument_match": {"body": "contains"}}]  # fmt: skip
    calls = _calls("t", id=4, body="The ZIPPER broke", extra=1)
    assert not score_tools(_case(expected_tools=expected), calls).passed  # exact: extra arg
    assert score_tools(_case(expected_tools=expected, argument_match="subset"), calls).passed
    wrong = _calls("t", id=5, body="zip")
    score = score_tools(_case(expected_tools=expected, argument_match="subset"), wrong)
    assert (score.passed, score.value) == (False, 0.5)
    assert "id=5, expected 4" in score.explanation


def test_answer_checks_contains_regex_and_json_schema() -> None:
    checks = AnswerChecks(
        contains=["shipped"],
        not_contains=["cancelled"],
        regex=r"order id \d+",
        json_schema={"type": "object", "required": ["answer"]},
    )
    good = score_answer(checks, "order id 42: Shipped", {"answer": "x"})
    assert good.passed and good.value == 1.0
    bad = score_answer(checks, "order cancelled", {"other": 1})
    assert not bad.passed and bad.value == 0.0
    assert "'answer' is a required property" in bad.explanation


def test_exact_binomial_tail_and_paired_tests() -> None:
    assert binomial_tail(8, 8) == 0.5**8
    assert binomial_tail(7, 10) == pytest.approx(sum(comb(10, k) for k in range(7, 11)) / 2**10)
    test = mcnemar_exact([True] * 10, [True] * 7 + [False] * 3)
    assert (test.worse, test.better, test.p_worse) == (3, 0, 0.125)
    assert sign_test([1.0, 0.5, 0.5], [1.0, 0.5, 0.5]).p_worse == 1.0  # ties only
    mixed = sign_test([1.0, 1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.5])
    assert (mixed.worse, mixed.better) == (2, 1)
    assert mixed.p_worse == pytest.approx(0.5)


def test_wilcoxon_signed_rank_exact_and_approximate() -> None:
    from steward.evals.stats import EXACT_WILCOXON_MAX, wilcoxon_signed_rank

    all_down = wilcoxon_signed_rank([1.0] * 5, [0.9, 0.8, 0.7, 0.6, 0.5])
    assert (all_down.worse, all_down.better, all_down.p_worse) == (5, 0, 1 / 32)
    # Differences -1, -2, +3: W- = 3; of the 8 sign patterns, 5 give W- >= 3.
    mixed = wilcoxon_signed_rank([5.0, 5.0, 5.0], [4.0, 3.0, 8.0])
    assert mixed.p_worse == 5 / 8
    # Ties share an average rank: -1, -1, +1 -> ranks 2, 2, 2; W- = 4 (of 6): P = 4/8.
    assert wilcoxon_signed_rank([1.0, 1.0, 1.0], [0.0, 0.0, 2.0]).p_worse == 0.5
    assert wilcoxon_signed_rank([1.0, 2.0], [1.0, 2.0]).p_worse == 1.0
    # Past the exact limit the normal approximation takes over; on the same 61 pairs it stays
    # close to the exact value.
    base = [1.0] * 61
    cand = [1.0 - (i + 1) / 1000 if i % 3 else 1.0 + (i + 1) / 1000 for i in range(61)]
    approx = wilcoxon_signed_rank(base, cand)
    assert len(base) > EXACT_WILCOXON_MAX
    exact = wilcoxon_signed_rank(base, cand, exact_max=61)
    assert approx.p_worse != exact.p_worse
    assert abs(approx.p_worse - exact.p_worse) < 0.002
