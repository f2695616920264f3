"""The release gate: thresholds on one run, and a paired comparison against a baseline.

Exit codes follow promptfoo's convention so CI treats them alike: 0 pass, 100 a threshold
failed, 1 an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from steward.evals.cases import GateConfig
from steward.evals.results import SuiteResult
from steward.evals.stats import PairedTest, mcnemar_exact, sign_test, wilcoxon_signed_rank

EXIT_PASS = 0
EXIT_ERROR = 1
EXIT_THRESHOLD = 100


@dataclass(frozen=True)
class Comparison:
    baseline: str
    paired_cases: int
    regressed: list[str]  # passed in the baseline, fail now
    improved: list[str]
    pass_fail: PairedTest
    scores: PairedTest
    score_ranks: PairedTest


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    failed_cases: list[str] = field(default_factory=list)
    comparison: Comparison | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_THRESHOLD


def compare(baseline: SuiteResult, candidate: SuiteResult) -> Comparison:
    """Pair the cases both runs have, by id."""
    before = baseline.by_id()
    pairs = [(before[c.case_id], c) for c in candidate.cases if c.case_id in before]
    return Comparison(
        baseline=f"{baseline.app} ({baseline.agent}, {baseline.started_at})",
        paired_cases=len(pairs),
        regressed=sorted(c.case_id for b, c in pairs if b.passed and not c.passed),
        improved=sorted(c.case_id for b, c in pairs if c.passed and not b.passed),
        pass_fail=mcnemar_exact([b.passed for b, _ in pairs], [c.passed for _, c in pairs]),
        scores=sign_test([b.score for b, _ in pairs], [c.score for _, c in pairs]),
        score_ranks=wilcoxon_signed_rank([b.score for b, _ in pairs], [c.score for _, c in pairs]),
    )


def decide(
    result: SuiteResult, gate: GateConfig, baseline: SuiteResult | None = None
) -> GateDecision:
    decision = GateDecision(
        passed=True, failed_cases=[c.case_id for c in result.cases if not c.passed]
    )
    if result.pass_rate < gate.min_pass_rate:
        decision.reasons.append(
            f"pass rate {result.pass_rate:.1%} is below {gate.min_pass_rate:.1%}"
        )
    if baseline is not None:
        comparison = decision.comparison = compare(baseline, result)
        if len(comparison.regressed) > gate.max_regressions:
            decision.reasons.append(
                f"{len(comparison.regressed)} case(s) regressed against the baseline "
                f"(at most {gate.max_regressions} allowed)"
            )
        test = comparison.pass_fail
        if test.worse > test.better and test.p_worse < gate.alpha:
            decision.reasons.append(
                f"worse than the baseline: McNemar exact p={test.p_worse:.4f} < {gate.alpha}"
            )
    decision.passed = not decision.reasons
    return decision
