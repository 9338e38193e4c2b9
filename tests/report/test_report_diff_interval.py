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
