"""Seed statistics for comparing strategies: mean, sample std, a 95 % interval (t, or a
seeded percentile bootstrap from 10 seeds on), a paired t-test over matching seeds (else
Welch's), Holm's correction across the compared groups, and the verdict against a
baseline ("better" / "worse" / "not distinguishable from seed noise").

numpy and scipy only: the dashboard, the CLI and the report import it without torch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

confidence_level = 0.95
significance_level = 0.05
bootstrap_min_n = 10
bootstrap_resamples = 10_000
bootstrap_seed = 0
# a spread below this is rounding error (0.8 - 0.7 != 0.7 - 0.6 in floats), treated as none
zero_spread = 1e-12

BETTER = "better"
WORSE = "worse"
NOISE = "not distinguishable from seed noise"
NOT_TESTED = "not tested"
BASELINE = "baseline"


def _clean(values: Sequence[float | None]) -> np.ndarray:
    """Finite values as a float array (None and NaN dropped)."""
    arr = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
    return arr[np.isfinite(arr)]


@dataclass(frozen=True)
class Describe:
    """n, mean, sample std (ddof=1) and an interval for the mean. `ci_method` is "t",
    "bootstrap" or None (n < 2: no interval, and `note` says so)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    ci_method: str | None
    note: str | None = None
    se: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def t_interval(values: Sequence[float], confidence: float = confidence_level) -> tuple[float, float]:
    """mean ± t_{(1+c)/2, n-1} · s / sqrt(n); (nan, nan) below two values."""
    x = _clean(values)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    mean = float(x.mean())
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(
    values: Sequence[float],
    confidence: float = confidence_level,
    resamples: int = bootstrap_resamples,
    seed: int = bootstrap_seed,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded: the same values give the same interval)."""
    x = _clean(values)
    if len(x) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def describe(
    values: Sequence[float | None],
    confidence: float = confidence_level,
    min_bootstrap_n: int = bootstrap_min_n,
    seed: int = bootstrap_seed,
) -> Describe:
    """Summary of one metric over the seeds of a group (None/NaN values are left out)."""
    x = _clean(values)
    n = len(x)
    if n == 0:
        return Describe(0, math.nan, math.nan, math.nan, math.nan, None, "no value")
    mean = float(x.mean())
    if n == 1:
        return Describe(1, mean, math.nan, math.nan, math.nan, None, "n = 1: no interval (one seed)")
    std = float(x.std(ddof=1))
    if n >= min_bootstrap_n:
        lo, hi = bootstrap_interval(x.tolist(), confidence, seed=seed)
        return Describe(n, mean, std, lo, hi, "bootstrap")
    lo, hi = t_interval(x.tolist(), confidence)
    return Describe(n, mean, std, lo, hi, "t")


@dataclass(frozen=True)
class TestResult:
    """A group against the baseline on one metric: `diff` = mean(group) - mean(baseline)
    (for the paired test, the mean of the per-seed differences, which is the same number
    when every seed is matched); p two-sided; `p_holm` after Holm's correction; `se` the
    standard error of `diff` (0 when the difference has no spread, NaN without a test)."""

    test: str | None  # "paired t" | "Welch t" | None
    diff: float
    statistic: float
    df: float
    p: float
    n_pairs: int
    p_holm: float = math.nan
    verdict: str = NOT_TESTED
    note: str | None = None
    se: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _p_from_t(t: float, df: float) -> float:
    return float(2 * sps.t.sf(abs(t), df))


def paired_test(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Paired t-test of a[i] - b[i] (same seed i). Identical differences (zero spread): p is
    1 when they are all 0, else 0; spreads under `zero_spread` count as zero (the difference is the same on every seed)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd <= zero_spread:
        moved = abs(mean) > zero_spread
        return TestResult(
            "paired t",
            mean,
            math.copysign(math.inf, mean) if moved else 0.0,
            n - 1,
            0.0 if moved else 1.0,
            n,
            se=0.0,
        )
    se = sd / math.sqrt(n)
    t = mean / se
    return TestResult("paired t", mean, t, n - 1, _p_from_t(t, n - 1), n, se=se)


def welch_test(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Welch's unequal-variance t-test of mean(a) - mean(b), Welch–Satterthwaite df."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nx, ny = len(x), len(y)
    diff = float(x.mean() - y.mean())
    vx, vy = float(x.var(ddof=1)) / nx, float(y.var(ddof=1)) / ny
    se2 = vx + vy
    if se2 <= zero_spread**2:
        moved = abs(diff) > zero_spread
        return TestResult(
            "Welch t",
            diff,
            math.copysign(math.inf, diff) if moved else 0.0,
            nx + ny - 2,
            0.0 if moved else 1.0,
            0,
            se=0.0,
        )
    t = diff / math.sqrt(se2)
    df = se2**2 / (vx**2 / (nx - 1) + vy**2 / (ny - 1))
    return TestResult("Welch t", diff, t, df, _p_from_t(t, df), 0, se=math.sqrt(se2))


SeedValues = Mapping[int, float | None] | Sequence[tuple[int, float | None]]


def _pairs(values: SeedValues) -> list[tuple[int, float]]:
    items = values.items() if isinstance(values, Mapping) else values
    return [(int(s), float(v)) for s, v in items if v is not None and math.isfinite(float(v))]


def compare_seeds(values: SeedValues, baseline: SeedValues) -> TestResult:
    """A group against the baseline, both given as {seed: value} (or (seed, value) pairs).
    Paired t-test when both have the same seeds, each once (at least two), else Welch's
    t-test; no test when either side has fewer than two values (the result says why)."""
    a, b = _pairs(values), _pairs(baseline)
    if len(a) < 2 or len(b) < 2:
        diff = float(np.mean([v for _, v in a]) - np.mean([v for _, v in b])) if a and b else math.nan
        return TestResult(
            None,
            diff,
            math.nan,
            math.nan,
            math.nan,
            0,
            note=f"no test: needs at least 2 seeds on each side (here {len(a)} and {len(b)})",
        )
    da, db = dict(a), dict(b)
    if len(da) == len(a) and len(db) == len(b) and set(da) == set(db):
        seeds = sorted(da)
        return paired_test([da[s] for s in seeds], [db[s] for s in seeds])
    return welch_test([v for _, v in a], [v for _, v in b])


def diff_interval(test: TestResult, confidence: float = confidence_level) -> tuple[float, float]:
    """The confidence interval of a test's difference: diff ± t_{(1+c)/2, df} · se (paired:
    se of the mean per-seed difference; Welch: of the difference of means, Welch–Satterthwaite
    df), so a mean difference of exactly 0 with spread still gets its interval. A difference
    that is the same nonzero number on every seed gives (diff, diff); no test, or no
    difference at all (every seed equal), gives (nan, nan)."""
    if test.test is None or not (math.isfinite(test.df) and test.df > 0) or not math.isfinite(test.diff):
        return math.nan, math.nan
    se = test.se
    if not math.isfinite(se) and math.isfinite(test.statistic) and test.statistic != 0:
        se = abs(test.diff / test.statistic)  # a TestResult made without se
    if not math.isfinite(se):
        return (test.diff, test.diff) if math.isinf(test.statistic) else (math.nan, math.nan)
    if se == 0:
        return (test.diff, test.diff) if test.diff != 0 else (math.nan, math.nan)
    half = float(sps.t.ppf((1 + confidence) / 2, test.df)) * se
    return test.diff - half, test.diff + half


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, made monotone, capped at 1), in the
    input order. NaN entries (no test) stay NaN and do not count in m."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def verdict(
    diff: float, p_adjusted: float, alpha: float = significance_level, higher_is_better: bool = True
) -> str:
    """ "better" / "worse" when the Holm-corrected p is below alpha, else seed noise."""
    if math.isnan(p_adjusted):
        return NOT_TESTED
    if p_adjusted >= alpha or diff == 0:
        return NOISE
    return BETTER if (diff > 0) == higher_is_better else WORSE


def compare_to_baseline(
    groups: Mapping[str, SeedValues],
    baseline: str,
    alpha: float = significance_level,
    higher_is_better: bool = True,
) -> dict[str, TestResult]:
    """Every group but the baseline against it (groups: {label: {seed: value} or [(seed, value), ...]}), with
    Holm's correction across those tests and the verdict of each."""
    if baseline not in groups:
        raise KeyError(f"baseline {baseline!r} is not one of the groups: {', '.join(groups)}")
    others = [g for g in groups if g != baseline]
    raw = {g: compare_seeds(groups[g], groups[baseline]) for g in others}
    adjusted = holm([raw[g].p for g in others])
    out: dict[str, TestResult] = {}
    for g, p_adj in zip(others, adjusted, strict=True):
        r = raw[g]
        out[g] = TestResult(
            r.test,
            r.diff,
            r.statistic,
            r.df,
            r.p,
            r.n_pairs,
            p_holm=p_adj,
            verdict=verdict(r.diff, p_adj, alpha, higher_is_better),
            note=r.note,
            se=r.se,
        )
    return out
