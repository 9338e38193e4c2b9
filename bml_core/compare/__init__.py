"""Comparing strategies over seeds, torch-free (numpy, scipy; plotly for the HTML only):
`grouping` (which runs are the seeds of one setting), `stats` (intervals, paired/Welch
tests, Holm, verdicts), `results` (the per-group table against a baseline), `published` (the papers' and BalanceBenchmark's numbers) and
`report` (the comparison report as a document, HTML, JSON and Markdown). Shared by the
CLI (`bml report`) and the dashboard's Compare and Report pages."""

from bml_core.compare.grouping import (
    GroupedRun,
    Grouping,
    RunGroup,
    RunRecord,
    config_paths,
    default_baseline,
    differing_paths,
    group_runs,
    strategy_label,
)
from bml_core.compare.results import GroupResult, Metric, Results, metrics_for, results
from bml_core.compare.stats import (
    BETTER,
    NOISE,
    NOT_TESTED,
    WORSE,
    Describe,
    TestResult,
    compare_seeds,
    compare_to_baseline,
    describe,
    holm,
    paired_test,
    welch_test,
)

__all__ = [
    "BETTER",
    "NOISE",
    "NOT_TESTED",
    "WORSE",
    "Describe",
    "GroupResult",
    "GroupedRun",
    "Grouping",
    "Metric",
    "Results",
    "RunGroup",
    "RunRecord",
    "TestResult",
    "compare_seeds",
    "compare_to_baseline",
    "config_paths",
    "default_baseline",
    "describe",
    "differing_paths",
    "group_runs",
    "holm",
    "metrics_for",
    "paired_test",
    "results",
    "strategy_label",
    "welch_test",
]
