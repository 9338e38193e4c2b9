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
    """{group label: the name shown}: the strategy alone when the key is `strategies`
    (`opm`), the run group's name when nothing differs (the seeds of one setting), else
    the label (`strategies=opm, optim.lr=0.01`)."""
    out: dict[str, str] = {}
    run_groups = list(dict.fromkeys(r.group for r in runs))
    for g in grouping.groups:
        if grouping.by == [cg.STRATEGIES]:
            out[g.label] = cg.show_value(g.key[cg.STRATEGIES])
        elif not grouping.by:
            out[g.label] = run_groups[0] if len(run_groups) == 1 else g.label
        else:
            out[g.label] = g.label
    return out


def colours(grouping: cg.Grouping) -> dict[str, str]:
    """One colour per group, by its position."""
    return {g.label: PALETTE[i % len(PALETTE)] for i, g in enumerate(grouping.groups)}
