"""The statistics behind a sweep's verdict, on plain lists of numbers (scipy.stats does the
distributions and the tests).

- ``describe``: mean, sample std (ddof=1) and the half-width of the 95% t-interval of the mean.
- ``compare``: is one config worse than the best? Paired t-test when both have results for the
  same seeds (same seed = same initial weights, data order and dropout masks in lrrun, so the
  per-seed difference cancels most of the noise), Welch's t-test otherwise. Two-sided.
- ``holm``: Holm's step-down correction across the comparisons with the best.
- ``detectable_difference`` / ``seeds_needed``: the power of those same tests (noncentral t),
  for "what could this sweep see" and "how many seeds would it take".

Results that cannot differ (every paired difference equal, or two groups without spread) get
the limit of the test instead of scipy's NaN: p = 1 when the means are equal, else p = 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None  # None when n = 0
    std: float | None  # sample std (ddof=1); None when n < 2
    ci95: float | None  # half-width of the 95% t-interval of the mean; None when n < 2


def describe(values: Sequence[float]) -> Summary:
    from scipy import stats

    n = len(values)
    if n == 0:
        return Summary(0, None, None, None)
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(n, mean, None, None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(n, mean, std, float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n))


@dataclass(frozen=True)
class Comparison:
    p: float | None  # two-sided p-value, before correction; None: cannot be computed
    test: str  # "paired", "welch", or "" when there is no test


def compare(best: Sequence[tuple[int, float]], other: Sequence[tuple[int, float]]) -> Comparison:
    """Test ``other`` against ``best``; each is a list of (seed, value) of its ok jobs."""
    from scipy import stats

    a, b = dict(best), dict(other)
    paired = len(a) == len(best) and len(b) == len(other) and a.keys() == b.keys()
    if paired and len(a) >= 2:
        seeds = sorted(a)
        diffs = [a[s] - b[s] for s in seeds]
        if max(diffs) == min(diffs):  # no spread: the limit of the t-test
            return Comparison(1.0 if diffs[0] == 0 else 0.0, "paired")
        with _quiet():
            result = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
        return Comparison(_p(result), "paired")
    x, y = [v for _, v in best], [v for _, v in other]
    if len(x) < 2 or len(y) < 2:
        return Comparison(None, "")
    if max(x) == min(x) and max(y) == min(y):
        return Comparison(1.0 if x[0] == y[0] else 0.0, "welch")
    with _quiet():
        result = stats.ttest_ind(x, y, equal_var=False)
    return Comparison(_p(result), "welch")


def _p(result: object) -> float:
    p = float(result.pvalue)  # type: ignore[attr-defined]
    return p if math.isfinite(p) else 1.0


@contextmanager
def _quiet() -> Iterator[None]:
    """scipy warns of precision loss for nearly identical data; its p-value is still right."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (None stays None and does not count as a comparison)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(order)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))  # step-down: never below an earlier one
        adjusted[i] = running
    return adjusted


def pooled_std(groups: Sequence[Sequence[float]]) -> tuple[float | None, int]:
    """The within-group std pooled over groups with n >= 2, and its degrees of freedom."""
    ss, df = 0.0, 0
    for g in groups:
        if len(g) >= 2:
            mean = math.fsum(g) / len(g)
            ss += math.fsum((v - mean) ** 2 for v in g)
            df += len(g) - 1
    return (math.sqrt(ss / df), df) if df else (None, 0)


def power(n: int, difference: float, std: float, paired: bool, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test at level ``alpha`` to find ``difference`` with ``n`` seeds
    per config: a one-sample test on n paired differences of std ``std`` (paired), or a
    two-sample test with n per group and a common std ``std`` (not paired)."""
    from scipy import stats

    if paired:
        df, se = n - 1, std / math.sqrt(n)
    else:
        df, se = 2 * n - 2, std * math.sqrt(2 / n)
    if df < 1:
        return 0.0
    nc, crit = difference / se, float(stats.t.ppf(1 - alpha / 2, df))
    with _quiet():
        upper, lower = float(stats.nct.sf(crit, df, nc)), float(stats.nct.cdf(-crit, df, nc))
    # scipy's nct returns NaN far in a tail (df=1, nc ~100), where the tail is ~0 (the
    # difference is >= 0, so the lower tail is the small one).
    return (upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0)


def detectable_difference(n: int, std: float, paired: bool) -> float | None:
    """The smallest difference the test finds with 80% power at p < 0.05, with n seeds."""
    from scipy.optimize import brentq

    if n < 2:
        return None
    if std == 0:
        return 0.0
    high = std
    while power(n, high, std, paired) < POWER:
        high *= 2
    return float(brentq(lambda d: power(n, d, std, paired) - POWER, 0.0, high, xtol=std * 1e-9))


def seeds_needed(difference: float, std: float, paired: bool, limit: int = 10_000) -> int | None:
    """The fewest seeds per config that find ``difference`` with 80% power at p < 0.05;
    None when it is 0 (nothing to find) or more than ``limit`` seeds would be needed."""
    if difference <= 0:
        return None
    if std == 0:
        return 2
    if power(limit, difference, std, paired) < POWER:
        return None
    low, high = 1, 2  # power(low) < POWER <= power(high); power grows with n
    while power(high, difference, std, paired) < POWER:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if power(mid, difference, std, paired) < POWER else (low, mid)
    return high
