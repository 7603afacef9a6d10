"""The statistics of a sweep's verdict (lrrun.sweep.stats), checked against scipy.stats on
hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from lrrun.sweep import stats

A = [0.8712, 0.8745, 0.8731, 0.8702, 0.8767]
B = [0.8690, 0.8741, 0.8700, 0.8688, 0.8740]


def seeded(values: list[float], first: int = 1) -> list[tuple[int, float]]:
    return list(enumerate(values, start=first))


def test_describe_matches_scipy() -> None:
    s = stats.describe(A)
    assert s.n == 5
    assert s.mean == pytest.approx(np.mean(A), rel=1e-15)
    assert s.std == pytest.approx(np.std(A, ddof=1), rel=1e-12)
    low, high = sps.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=sps.sem(A))
    assert s.ci95 == pytest.approx((high - low) / 2, rel=1e-12)


def test_describe_with_one_or_no_value() -> None:
    assert stats.describe([0.9]) == stats.Summary(1, 0.9, None, None)
    assert stats.describe([]) == stats.Summary(0, None, None, None)


def test_same_seeds_are_paired() -> None:
    c = stats.compare(seeded(A), seeded(B))
    assert c.test == "paired"
    assert c.p == pytest.approx(sps.ttest_rel(A, B).pvalue, rel=1e-12)


def test_pairing_follows_the_seed_not_the_order() -> None:
    shuffled = [(s, v) for s, v in reversed(seeded(B))]
    assert stats.compare(seeded(A), shuffled).p == pytest.approx(sps.ttest_rel(A, B).pvalue)


def test_other_seeds_use_welch() -> None:
    c = stats.compare(seeded(A), seeded(B, first=10))
    assert c.test == "welch"
    assert c.p == pytest.approx(sps.ttest_ind(A, B, equal_var=False).pvalue, rel=1e-12)
    # one seed missing on one side (a failed job): no longer the same seeds -> Welch
    c = stats.compare(seeded(A), seeded(B)[:4])
    assert c.test == "welch"
    assert c.p == pytest.approx(sps.ttest_ind(A, B[:4], equal_var=False).pvalue, rel=1e-12)


def test_identical_results_are_p_1_never_nan() -> None:
    c = stats.compare(seeded(A), seeded(A))
    assert (c.p, c.test) == (1.0, "paired")
    assert np.isnan(sps.ttest_rel(A, A).pvalue)  # what scipy alone would give
    constant = [0.5, 0.5, 0.5]
    assert stats.compare(seeded(constant), seeded(constant, first=7)) == stats.Comparison(
        1.0, "welch"
    )


def test_a_constant_nonzero_difference_is_certain() -> None:
    shifted = [v - 0.01 for v in A]
    diffs = {a - b for a, b in zip(A, shifted, strict=True)}
    if len(diffs) == 1:  # exactly constant in floating point
        assert stats.compare(seeded(A), seeded(shifted)).p == 0.0
    else:  # tiny float spread: scipy's answer, which is ~0
        assert stats.compare(seeded(A), seeded(shifted)).p < 1e-6


def test_one_value_cannot_be_tested() -> None:
    assert stats.compare(seeded(A), [(1, 0.87)]) == stats.Comparison(None, "")
    assert stats.compare([(1, 0.87)], [(1, 0.86)]) == stats.Comparison(None, "")


def test_holm_by_hand() -> None:
    # sorted: 0.005, 0.01, 0.03, 0.04 with m = 4 -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    assert stats.holm([0.01, 0.04, 0.03, None, 0.005]) == pytest.approx(
        [0.03, 0.06, 0.06, None, 0.02]
    )
    assert stats.holm([0.6, 0.9]) == [1.0, 1.0]  # capped at 1
    assert stats.holm([]) == []


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_its_definition(seed: int) -> None:
    """adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)), on random p-values."""
    ps = list(np.random.default_rng(seed).uniform(0, 0.2, size=7))
    order = np.argsort(ps)
    expected = [0.0] * len(ps)
    for i, idx in enumerate(order):
        expected[idx] = max(min(1.0, (len(ps) - j) * ps[order[j]]) for j in range(i + 1))
    assert stats.holm(ps) == pytest.approx(expected, rel=1e-15)


def test_pooled_std() -> None:
    std, df = stats.pooled_std([A, B, [0.9]])
    expected = math.sqrt((np.var(A, ddof=1) * 4 + np.var(B, ddof=1) * 4) / 8)
    assert (std, df) == (pytest.approx(expected, rel=1e-12), 8)
    assert stats.pooled_std([[0.9], [0.8]]) == (None, 0)


def test_seeds_needed_matches_the_textbook() -> None:
    """Cohen's d = 0.5 at 80% power, alpha 0.05 two-sided: 64 per group (two-sample), 34
    pairs (paired); d = 0.8: 26 per group."""
    assert stats.seeds_needed(0.5, 1.0, paired=False) == 64
    assert stats.seeds_needed(0.5, 1.0, paired=True) == 34
    assert stats.seeds_needed(0.008, 0.01, paired=False) == 26
    assert stats.seeds_needed(0.0, 1.0, paired=True) is None  # nothing to find
    assert stats.seeds_needed(1e-6, 1.0, paired=True) is None  # beyond any sweep
    assert stats.seeds_needed(0.01, 0.0, paired=True) == 2  # no noise at all


def test_power_is_the_noncentral_t() -> None:
    """At the detectable difference the power is 80%; n is the smallest with >= 80%."""
    for paired in (True, False):
        d = stats.detectable_difference(5, 0.002, paired)
        assert d is not None
        assert stats.power(5, d, 0.002, paired) == pytest.approx(0.8, abs=1e-6)
        assert stats.seeds_needed(d * 1.001, 0.002, paired) == 5
        assert stats.seeds_needed(d * 0.999, 0.002, paired) == 6
    assert stats.detectable_difference(1, 0.002, True) is None


def test_two_seeds_have_a_finite_power() -> None:
    """Two paired seeds leave one degree of freedom, where scipy's noncentral t returns NaN
    far in its lower tail; a 2-seed sweep's verdict crashed on it."""
    assert stats.power(2, 100.0, 1.0, paired=True) == pytest.approx(1.0)
    d = stats.detectable_difference(2, 0.0222, paired=True)
    assert d is not None and math.isfinite(d)
    assert stats.power(2, d, 0.0222, paired=True) == pytest.approx(0.8, abs=1e-6)
    for paired in (True, False):
        assert stats.seeds_needed(0.0015, 0.0222, paired) is not None


@pytest.mark.parametrize("paired", [True, False])
def test_power_by_simulation(paired: bool) -> None:
    """Simulated t-tests at the detectable difference reject ~80% of the time."""
    rng = np.random.default_rng(0)
    n, sd = 4, 0.002
    d = stats.detectable_difference(n, sd, paired)
    trials = 20_000
    if paired:
        diffs = rng.normal(d, sd, size=(trials, n))
        p = sps.ttest_1samp(diffs, 0.0, axis=1).pvalue
    else:
        a = rng.normal(d, sd, size=(trials, n))
        b = rng.normal(0.0, sd, size=(trials, n))
        p = sps.ttest_ind(a, b, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.015)
