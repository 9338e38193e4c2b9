"""`stats.diff_interval` (the interval of a difference to the baseline, used by the Compare
page's winner sentence and its results CSV) against scipy's own intervals."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from bml_core.compare import stats


def test_paired_and_welch_intervals_equal_scipys() -> None:
    a, b = [0.70, 0.72, 0.69], [0.60, 0.65, 0.61]
    ci = sps.ttest_rel(a, b).confidence_interval()
    assert stats.diff_interval(stats.paired_test(a, b)) == pytest.approx((ci.low, ci.high))
    a2, b2 = [0.70, 0.72, 0.69], [0.60, 0.65]
    ci = sps.ttest_ind(a2, b2, equal_var=False).confidence_interval()
    assert stats.diff_interval(stats.welch_test(a2, b2)) == pytest.approx((ci.low, ci.high))
    ci90 = sps.ttest_rel(a, b).confidence_interval(0.9)
    assert stats.diff_interval(stats.paired_test(a, b), 0.9) == pytest.approx((ci90.low, ci90.high))


def test_no_test_or_no_spread() -> None:
    untested = stats.compare_seeds({0: 0.7}, {0: 0.6, 1: 0.61})
    assert all(math.isnan(x) for x in stats.diff_interval(untested))
    same_gap = stats.paired_test([0.7, 0.8], [0.6, 0.7])  # the same +0.1 on every seed
    assert stats.diff_interval(same_gap) == pytest.approx((0.1, 0.1))
    assert all(math.isnan(x) for x in stats.diff_interval(stats.paired_test([0.7, 0.8], [0.7, 0.8])))


def test_a_mean_difference_of_zero_with_spread_still_has_its_interval() -> None:
    a, b = [0.70, 0.80, 0.75], [0.72, 0.78, 0.75]  # per-seed differences -0.02, +0.02, 0
    paired = stats.paired_test(a, b)
    assert paired.diff == pytest.approx(0.0, abs=1e-12)
    ci = sps.ttest_rel(a, b).confidence_interval()
    lo, hi = stats.diff_interval(paired)
    assert (lo, hi) == pytest.approx((ci.low, ci.high)) and lo < 0 < hi
    a2, b2 = [0.70, 0.80], [0.74, 0.75, 0.76]  # equal means, Welch
    welch = stats.welch_test(a2, b2)
    ci = sps.ttest_ind(a2, b2, equal_var=False).confidence_interval()
    assert stats.diff_interval(welch) == pytest.approx((ci.low, ci.high))
    # the same through compare_to_baseline (Holm's copy keeps se)
    via = stats.compare_to_baseline({"x": dict(enumerate(a)), "base": dict(enumerate(b))}, "base")["x"]
    assert stats.diff_interval(via) == pytest.approx(stats.diff_interval(paired))
