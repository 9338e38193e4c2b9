"""Seed statistics (bml_core.compare.stats) against hand-computed values and scipy on
fixed numbers: mean, sample std, t interval, bootstrap, paired and Welch tests, Holm's
correction, and the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bml_core.compare import stats

A = [0.70, 0.72, 0.74]  # mean 0.72, deviations -0.02, 0, 0.02: s^2 = 0.0008 / 2, s = 0.02
B = [0.68, 0.69, 0.73]  # paired with A by position (seeds 0, 1, 2): d = 0.02, 0.03, 0.01
T_975_DF2 = 4.302652729911275  # t table, 97.5 % quantile, 2 degrees of freedom


def test_describe_mean_std_and_t_interval_by_hand() -> None:
    d = stats.describe(A)
    assert d.n == 3 and d.ci_method == "t" and d.note is None
    assert d.mean == pytest.approx(0.72, abs=1e-15)
    assert d.std == pytest.approx(0.02, rel=1e-12)
    half = T_975_DF2 * 0.02 / math.sqrt(3)  # = 0.049683...
    assert d.ci_low == pytest.approx(0.72 - half, rel=1e-9)
    assert d.ci_high == pytest.approx(0.72 + half, rel=1e-9)


def test_describe_matches_scipy() -> None:
    x = [0.61, 0.655, 0.7, 0.58, 0.64]
    d = stats.describe(x)
    assert d.mean == pytest.approx(np.mean(x)) and d.std == pytest.approx(np.std(x, ddof=1))
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert (d.ci_low, d.ci_high) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))


def test_one_seed_has_no_interval_and_says_so() -> None:
    d = stats.describe([0.7])
    assert d.n == 1 and d.mean == 0.7 and d.ci_method is None
    assert math.isnan(d.std) and math.isnan(d.ci_low) and math.isnan(d.ci_high)
    assert "no interval" in (d.note or "")
    assert stats.describe([None, math.nan]).n == 0


def test_bootstrap_from_ten_seeds_is_seeded_and_close_to_t() -> None:
    rng = np.random.default_rng(3)
    x = list(0.7 + 0.02 * rng.standard_normal(30))
    d = stats.describe(x)
    assert d.ci_method == "bootstrap"
    assert (d.ci_low, d.ci_high) == stats.bootstrap_interval(x)  # same seed, same interval
    assert d.ci_low < d.mean < d.ci_high
    lo, hi = stats.t_interval(x)
    assert d.ci_low == pytest.approx(lo, abs=0.003) and d.ci_high == pytest.approx(hi, abs=0.003)
    assert stats.describe(x[:9]).ci_method == "t"
    assert stats.describe(x[:10]).ci_method == "bootstrap"


def test_paired_test_by_hand_and_scipy() -> None:
    r = stats.compare_seeds(dict(enumerate(A)), dict(enumerate(B)))
    assert r.test == "paired t" and r.n_pairs == 3 and r.df == 2
    assert r.diff == pytest.approx(0.02, abs=1e-15)
    # d = (0.02, 0.03, 0.01): mean 0.02, s_d 0.01, t = 0.02 / (0.01 / sqrt 3) = 2 sqrt 3
    assert r.statistic == pytest.approx(2 * math.sqrt(3), rel=1e-9)
    # t with 2 df: P(|T| > t) = 1 - t / sqrt(t^2 + 2) = 1 - sqrt(12 / 14)
    assert r.p == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-9)
    ref = sps.ttest_rel(A, B)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-9) and r.p == pytest.approx(
        ref.pvalue, rel=1e-9
    )


def test_welch_test_by_hand_and_scipy() -> None:
    a, b = [1.0, 2.0, 3.0], [3.0, 5.0, 7.0]  # variances 1 and 4
    r = stats.compare_seeds({0: 1.0, 1: 2.0, 2: 3.0}, {5: 3.0, 6: 5.0, 7: 7.0})  # no seed in common
    assert r.test == "Welch t" and r.n_pairs == 0
    assert r.diff == -3.0
    assert r.statistic == pytest.approx(-3 / math.sqrt(5 / 3), rel=1e-12)  # se^2 = 1/3 + 4/3
    assert r.df == pytest.approx(50 / 17, rel=1e-12)  # (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12) and r.p == pytest.approx(
        ref.pvalue, rel=1e-9
    )


def test_seed_sets_that_differ_use_welch() -> None:
    r = stats.compare_seeds({0: 0.7, 1: 0.72, 2: 0.74}, {0: 0.68, 1: 0.69})
    assert r.test == "Welch t"
    ref = sps.ttest_ind([0.7, 0.72, 0.74], [0.68, 0.69], equal_var=False)
    assert r.p == pytest.approx(ref.pvalue, rel=1e-9)


def test_one_seed_side_is_not_tested() -> None:
    r = stats.compare_seeds({0: 0.8}, {0: 0.7, 1: 0.71})
    assert r.test is None and math.isnan(r.p) and r.diff == pytest.approx(0.095)
    assert "at least 2 seeds" in (r.note or "")
    out = stats.compare_to_baseline({"joint": {0: 0.7, 1: 0.71}, "opm": {0: 0.8}}, "joint")
    assert out["opm"].verdict == stats.NOT_TESTED and math.isnan(out["opm"].p_holm)


def test_holm_by_hand() -> None:
    # sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> raised to 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.holm([0.02, math.nan, 0.01])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_holm_against_statsmodels_formula_on_many() -> None:
    p = [0.001, 0.2, 0.013, 0.04, 0.0049]
    order = np.argsort(p)
    m = len(p)
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        expected[i] = running
    assert stats.holm(p) == pytest.approx(list(expected))
    assert stats.holm(p)[0] == pytest.approx(0.005)  # smallest of 5: 5 x 0.001


def test_verdicts_better_worse_and_seed_noise() -> None:
    joint = {0: 0.60, 1: 0.61, 2: 0.62, 3: 0.60}
    better = {0: 0.70, 1: 0.715, 2: 0.72, 3: 0.705}
    worse = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.505}
    overlap = {0: 0.605, 1: 0.60, 2: 0.625, 3: 0.61}  # inside the baseline's seed spread
    out = stats.compare_to_baseline({"joint": joint, "b": better, "w": worse, "o": overlap}, "joint")
    assert out["b"].verdict == stats.BETTER and out["b"].test == "paired t"
    assert out["w"].verdict == stats.WORSE
    assert out["o"].verdict == stats.NOISE == "not distinguishable from seed noise"
    ps = [out[g].p for g in ("b", "w", "o")]
    assert [out[g].p_holm for g in ("b", "w", "o")] == pytest.approx(stats.holm(ps))
    with pytest.raises(KeyError, match="baseline 'x'"):
        stats.compare_to_baseline({"joint": joint}, "x")


def test_overlapping_seeds_are_noise_even_with_a_higher_mean() -> None:
    base = {0: 0.70, 1: 0.75, 2: 0.72}
    other = {0: 0.74, 1: 0.73, 2: 0.76}  # mean 0.743 vs 0.723, but seed 1 is lower
    r = stats.compare_to_baseline({"joint": base, "opm": other}, "joint")["opm"]
    assert r.diff > 0 and r.p > 0.05 and r.verdict == stats.NOISE


def test_identical_differences_are_decided_without_nan() -> None:
    r = stats.compare_seeds({0: 0.7, 1: 0.8}, {0: 0.6, 1: 0.7})
    assert r.test == "paired t" and r.p == 0.0 and r.statistic == math.inf
    r = stats.compare_seeds({0: 0.7, 1: 0.8}, {0: 0.7, 1: 0.8})
    assert r.p == 1.0 and stats.verdict(r.diff, r.p) == stats.NOISE


def test_a_seed_twice_on_one_side_falls_back_to_welch() -> None:
    r = stats.compare_seeds([(0, 0.7), (0, 0.72), (1, 0.74)], [(0, 0.6), (1, 0.62)])
    assert r.test == "Welch t"
    ref = sps.ttest_ind([0.7, 0.72, 0.74], [0.6, 0.62], equal_var=False)
    assert r.p == pytest.approx(ref.pvalue, rel=1e-9)
