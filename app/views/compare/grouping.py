"""How the Compare page groups runs (`bml_core.compare.grouping`: by default every config
path whose value differs between them, the seed aside), the keys offered to group by, the
names shown for the groups and one colour per group. Plain functions; no Streamlit here."""

from __future__ import annotations

from collections.abc import Sequence

import db
from app.charts import PALETTE
from bml_core.compare import grouping as cg

AUTO_KEY_HELP = "every config path whose value differs between the runs, the seed aside"


def key_options(runs: Sequence[db.RunDetail]) -> list[str]:
    """Config paths a user can group by: the differing ones first (strategies leading),
    then every other path of the runs' configs (strategy parameters by name)."""
    differing = cg.differing_paths([r.config for r in runs]) if runs else []
    every: set[str] = set()
    for r in runs:
        every.update(p for p in cg.config_paths(r.config) if not p.startswith(f"{cg.STRATEGIES}."))
    rest = sorted(p for p in every if p not in differing and p not in ("name", "tags"))
    if cg.STRATEGIES in rest:
        rest.remove(cg.STRATEGIES)
        rest.insert(0, cg.STRATEGIES)
    return differing + rest


def group(runs: Sequence[db.RunDetail], by: Sequence[str] | None = None) -> cg.Grouping:
    """Runs grouped by the config paths `by` (None or empty: what differs, seed aside).
    Only succeeded runs with a test accuracy are pooled; the others stay in their group,
    not pooled, with the reason; an older copy of a retried seed gives way to the retry."""
    return cg.group_runs(runs, by=list(by) if by else None)


def display_names(grouping: cg.Grouping, runs: Sequence[db.RunInfo] = ()) -> dict[str, str]:
    """{group label: the name shown}: the label itself, the one name of a group on Compare,
    /report and `bml report` (`bml_core.compare.grouping.group_label`: `opm` for the key
    `strategies`, the run group's name when only seeds differ, `opm, optim.lr=0.01`)."""
    del runs  # the label already holds the run group's name when only seeds differ
    return {g.label: g.label for g in grouping.groups}


def colours(grouping: cg.Grouping) -> dict[str, str]:
    """One colour per group, by its position."""
    return {g.label: PALETTE[i % len(PALETTE)] for i, g in enumerate(grouping.groups)}
