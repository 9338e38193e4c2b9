"""The report document of finished runs, shared by `bml report`, the Report page and the
benchmarks: the selection is resolved in the store (unknown groups and ids named), grouped,
and handed to `bml_core.compare.report.build_report`. Imports stay inside the function so
that importing this module costs nothing until a report is made."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def make_report(
    engine: Any,
    groups: Sequence[str],
    run_ids: Sequence[int],
    by: Sequence[str] | None = None,
    baseline: str | None = None,
    statuses: Sequence[str] = ("succeeded",),
    title: str | None = None,
) -> dict[str, Any]:
    """The report document of the selected runs; ValueError with the message for the
    user when a group or id is unknown, the key or baseline is wrong, or nothing finished."""
    import db
    from bml_core.compare import group_runs
    from bml_core.compare.report import build_report

    sel = db.runs_for_report(engine, groups, run_ids)
    if sel.unknown_groups:
        known = sorted(db.list_groups(engine))
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        raise ValueError(
            f"unknown group {sel.unknown_groups[0]!r} (no run has it); known groups: {shown or 'none'}"
        )
    if sel.unknown_ids:
        raise ValueError(
            f"no run with id {', '.join(str(i) for i in sel.unknown_ids)} (see `bml runs` for the ids)"
        )
    grouping = group_runs(sel.runs, by=by, statuses=statuses)
    if not any(g.n for g in grouping.groups):
        why = "; ".join(f"#{r.record.id} {r.reason}" for r in grouping.excluded[:10])
        raise ValueError(f"nothing to report: no selected run has finished ({why})")
    curves = db.group_curves(engine, grouping.included_ids())
    return build_report(
        grouping,
        curves,
        baseline=baseline,
        title=title,
        selection={"groups": list(groups), "run_ids": list(run_ids)},
    )
