"""The Compare page's data, by subject (issue 24): which runs an address names
(`address`), how they are grouped, named and coloured (`grouping`), the curves (`curves`),
the results table and winner sentence (`results`), and the per-run table, config diff and
CSV exports (`tables`). This module re-exports them all, so `from app.views.compare import
data as cv` keeps working. Plain functions of plain data; no Streamlit here."""

from __future__ import annotations

from app.views.compare.address import (
    DEFAULT_KEY_PATTERNS,
    common_keys,
    default_keys,
    max_compared_runs,
    parse_groups,
    parse_run_ids,
    runs_of,
)
from app.views.compare.curves import (
    CurveSet,
    chart_width_px,
    compare_max_buckets,
    curves,
    seed_line_name,
    seeds_by_default,
    smooth,
)
from app.views.compare.grouping import AUTO_KEY_HELP, colours, display_names, group, key_options
from app.views.compare.results import (
    _p,
    results,
    results_csv_rows,
    results_table,
    verdict_text,
    winner_sentence,
)
from app.views.compare.tables import (
    SUMMARY_COLUMNS,
    best_rows,
    diff_table,
    left_out_rows,
    modalities_of,
    per_run_table,
    summary_table,
    to_csv,
)
from bml_core.compare import grouping as cg

__all__ = [
    "AUTO_KEY_HELP",
    "DEFAULT_KEY_PATTERNS",
    "SUMMARY_COLUMNS",
    "CurveSet",
    "_p",
    "best_rows",
    "cg",
    "chart_width_px",
    "colours",
    "common_keys",
    "compare_max_buckets",
    "curves",
    "default_keys",
    "diff_table",
    "display_names",
    "group",
    "key_options",
    "left_out_rows",
    "max_compared_runs",
    "modalities_of",
    "parse_groups",
    "parse_run_ids",
    "per_run_table",
    "results",
    "results_csv_rows",
    "results_table",
    "runs_of",
    "seed_line_name",
    "seeds_by_default",
    "smooth",
    "summary_table",
    "to_csv",
    "verdict_text",
    "winner_sentence",
]
