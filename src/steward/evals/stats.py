"""Paired tests for comparing two eval runs case by case, exact and dependency-free.

McNemar's exact test on pass/fail looks only at the discordant cases (passed in one run, failed
in the other): under "no difference" each is equally likely to go either way, so the number of
regressions among them is Binomial(n, 1/2). The sign test does the same on per-case scores; the
Wilcoxon signed-rank test also weighs how much each score moved (exact null distribution by
counting sign assignments, ties given average ranks; a normal approximation past 60 pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb, erf, sqrt


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


EXACT_WILCOXON_MAX = 60


def _ranks(values: list[float]) -> list[float]:
    """Average ranks (1-based) of `values`."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _upper_tail_exact(doubled: list[int], observed: int) -> float:
    """P(sum of a random subset of `doubled` >= observed), each subset equally likely."""
    counts = {0: 1}
    for rank in doubled:
        step = dict(counts)
        for total, ways in counts.items():
            step[total + rank] = step.get(total + rank, 0) + ways
        counts = step
    favourable = sum(ways for total, ways in counts.items() if total >= observed)
    return favourable / (1 << len(doubled))


def wilcoxon_signed_rank(
    baseline: list[float], candidate: list[float], *, exact_max: int = EXACT_WILCOXON_MAX
) -> PairedTest:
    """One-sided p of "the candidate's scores are lower" from the sum of the ranks of the
    decreases; zero differences are dropped."""
    if len(baseline) != len(candidate):
        raise ValueError("paired scores need equal lengths")
    diffs = [c - b for b, c in zip(baseline, candidate, strict=True) if c != b]
    worse = sum(1 for d in diffs if d < 0)
    better = len(diffs) - worse
    if not diffs:
        return PairedTest("wilcoxon_signed_rank", 0, 0, 1.0, 1.0)
    ranks = _ranks([abs(d) for d in diffs])
    doubled = [round(2 * r) for r in ranks]  # average ranks are multiples of 1/2
    w_minus = sum(r for r, d in zip(doubled, diffs, strict=True) if d < 0)
    w_plus = sum(doubled) - w_minus
    if len(diffs) <= exact_max:
        p_worse = _upper_tail_exact(doubled, w_minus)
        p_better = _upper_tail_exact(doubled, w_plus)
    else:
        n = len(diffs)
        mean = n * (n + 1) / 2
        ties = sum(r * r for r in ranks)
        sd = sqrt(ties) / 2 or 1.0  # of W-, whose variance is sum(rank^2) / 4
        p_worse = 0.5 * (1 - erf((w_minus / 2 - mean / 2 - 0.5) / (sd * sqrt(2))))
        p_better = 0.5 * (1 - erf((w_plus / 2 - mean / 2 - 0.5) / (sd * sqrt(2))))
    return PairedTest(
        "wilcoxon_signed_rank", worse, better, p_worse, min(1.0, 2 * min(p_worse, p_better))
    )
