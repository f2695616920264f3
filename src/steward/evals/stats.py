"""Paired tests for comparing two eval runs case by case, exact and dependency-free.

McNemar's exact test on pass/fail looks only at the discordant cases (passed in one run, failed
in the other): under "no difference" each is equally likely to go either way, so the number of
regressions among them is Binomial(n, 1/2). The sign test does the same on per-case scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb


def binomial_tail(successes: int, trials: int, p: float = 0.5) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p), exactly."""
    if successes <= 0:
        return 1.0
    if successes > trials:
        return 0.0
    tail = sum(
        comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(successes, trials + 1)
    )
    return min(1.0, tail)


@dataclass(frozen=True)
class PairedTest:
    name: str
    worse: int  # cases that got worse
    better: int  # cases that got better
    p_worse: float  # one-sided p-value of "the candidate is worse"
    p_two_sided: float


def _paired(name: str, worse: int, better: int) -> PairedTest:
    n = worse + better
    p_worse = binomial_tail(worse, n)
    p_two = min(1.0, 2 * min(p_worse, binomial_tail(better, n))) if n else 1.0
    return PairedTest(name, worse, better, p_worse, p_two)


def mcnemar_exact(baseline: list[bool], candidate: list[bool]) -> PairedTest:
    """Exact McNemar on paired pass/fail outcomes."""
    if len(baseline) != len(candidate):
        raise ValueError("paired outcomes need equal lengths")
    worse = sum(1 for b, c in zip(baseline, candidate, strict=True) if b and not c)
    better = sum(1 for b, c in zip(baseline, candidate, strict=True) if c and not b)
    return _paired("mcnemar_exact", worse, better)


def sign_test(baseline: list[float], candidate: list[float]) -> PairedTest:
    """The sign test on paired scores; ties carry no information and are dropped."""
    if len(baseline) != len(candidate):
        raise ValueError("paired scores need equal lengths")
    worse = sum(1 for b, c in zip(baseline, candidate, strict=True) if c < b)
    better = sum(1 for b, c in zip(baseline, candidate, strict=True) if c > b)
    return _paired("sign_test", worse, better)
