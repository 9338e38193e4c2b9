"""Which runs the Compare page's address names (`?runs=1,2`, `?group=a,b`), loaded with
their configs, and the metric keys they share. Plain functions; no Streamlit here."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

import db
from app.address import parse_groups, parse_run_ids  # noqa: F401 - Compare's address names them too

max_compared_runs = 50
DEFAULT_KEY_PATTERNS = ("val/acc", "imbalance/ratio/", "val/acc/", "train/loss")


def runs_of(
    engine: Engine, run_ids: Sequence[int] = (), groups: Sequence[str] | str | None = None
) -> tuple[list[db.RunDetail], list[int]]:
    """The runs to compare with their configs (given ids in order, or the groups' runs
    oldest first; at most `max_compared_runs`) and the ids not found."""
    if groups:
        names = [groups] if isinstance(groups, str) else list(groups)
        ids: list[int] = []
        for g in names:
            page = db.list_runs(engine, group=g, limit=max_compared_runs)
            ids.extend(sorted(r.id for r in page.runs))
        return db.get_runs(engine, sorted(dict.fromkeys(ids))[:max_compared_runs])
    return db.get_runs(engine, list(run_ids)[:max_compared_runs])


def common_keys(engine: Engine, runs: Sequence[db.RunInfo]) -> list[str]:
    """Metric keys any of the runs has, sorted."""
    keys: set[str] = set()
    for r in runs:
        keys.update(db.series_keys(engine, r.id))
    return sorted(keys)


def default_keys(available: Sequence[str]) -> list[str]:
    """`val/acc` and the discrepancy ratios when present, else the first keys."""
    chosen = [k for k in available if k == "val/acc" or k.startswith("imbalance/ratio/")]
    return chosen or list(available[:2])
