"""Which runs the Compare page's address names (`?runs=1,2`, `?group=a,b`), loaded with
their configs, and the metric keys they share. Plain functions; no Streamlit here."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy import Engine

import db

max_compared_runs = 50
DEFAULT_KEY_PATTERNS = ("val/acc", "imbalance/ratio/", "val/acc/", "train/loss")


def parse_run_ids(text: str | None) -> tuple[list[int], list[str]]:
    """`1,2,3` -> ([1, 2, 3], []); parts that are not ids come back as the second list."""
    ids: list[int] = []
    bad: list[str] = []
    for part in re.split(r"[,\s]+", text or ""):
        if not part:
            continue
        if part.isdigit():
            ids.append(int(part))
        else:
            bad.append(part)
    return list(dict.fromkeys(ids)), bad


def parse_groups(values: Sequence[str], known: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """`?group=a&group=b` or `?group=a,b` -> (known groups in order, unknown names). A value
    that is itself a group name is taken whole (names may hold commas)."""
    wanted: list[str] = []
    for value in values:
        if not value:
            continue
        wanted.extend([value] if value in known else [p.strip() for p in value.split(",") if p.strip()])
    wanted = list(dict.fromkeys(wanted))
    return [g for g in wanted if g in known], [g for g in wanted if g not in known]


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
