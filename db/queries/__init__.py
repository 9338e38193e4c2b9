"""Reads for the app and the CLI. Every function returns plain data (dataclasses, dicts,
lists of numbers): no ORM object or session leaves this package.

Values read back as floats: NULL in the store is NaN, +/-inf stay infinite. Downsampled
reads use the rollups kept by the writer (`db.ingest`), so their cost depends on the
number of buckets asked for, not on the length of the series.

One module a subject: `runs` (listing, filters, detail), `events` (log lines and alerts),
`configs` (config and environment diffs), `series` (raw points), `downsample` (buckets
from the rollups), `groups` (aggregates across runs, report selections). This file is the
package's interface: `from db.queries import X` for every name below."""

from __future__ import annotations

from bml_core.configpaths import diff_configs
from db.queries.configs import config_diff, environment_diff
from db.queries.downsample import (
    BucketPlan,
    Downsampled,
    bucket_width_slack,
    default_max_buckets,
    downsampled_many,
    downsampled_series,
    plan_buckets,
)
from db.queries.events import EventInfo, alert_counts, get_event, run_events
from db.queries.groups import (
    GroupAggregate,
    ReportSelection,
    group_aggregate,
    group_curves,
    report_curve_prefixes,
    runs_for_report,
)
from db.queries.runs import (
    RunDetail,
    RunInfo,
    RunPage,
    get_run,
    get_runs,
    list_groups,
    list_runs,
    require_run,
)
from db.queries.series import (
    SeriesData,
    change_mark,
    latest_values,
    run_points,
    series_keys,
    series_per_statement,
    series_since,
    series_tail,
)

__all__ = [
    "BucketPlan",
    "Downsampled",
    "EventInfo",
    "GroupAggregate",
    "ReportSelection",
    "RunDetail",
    "RunInfo",
    "RunPage",
    "SeriesData",
    "alert_counts",
    "bucket_width_slack",
    "config_diff",
    "default_max_buckets",
    "diff_configs",
    "downsampled_many",
    "downsampled_series",
    "environment_diff",
    "get_event",
    "get_run",
    "get_runs",
    "group_aggregate",
    "group_curves",
    "latest_values",
    "list_groups",
    "list_runs",
    "plan_buckets",
    "report_curve_prefixes",
    "require_run",
    "run_events",
    "run_points",
    "runs_for_report",
    "series_keys",
    "series_per_statement",
    "series_since",
    "change_mark",
    "series_tail",
]
