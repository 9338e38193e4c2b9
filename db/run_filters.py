"""What the Runs page offers in its filters: the distinct strategies, datasets, groups and
owners in the store, one indexed `SELECT DISTINCT` each (issue 22: listing every run to
collect them cost ~240 ms at 10,000 runs and grows with the store)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from db.models import Run


def filter_values(engine: Engine) -> dict[str, list[str]]:
    """{"strategy", "dataset", "group", "owner"}: the values present, sorted (no NULL owner)."""
    columns = {"strategy": Run.strategy, "dataset": Run.dataset, "group": Run.group, "owner": Run.owner}
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, column in columns.items():
            values = conn.execute(select(column).where(column.is_not(None)).distinct()).scalars()
            out[name] = sorted(str(v) for v in values)
    return out
