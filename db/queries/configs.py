"""What differs between runs' configs and recorded environments, as dotted paths (built
on `bml_core.configpaths.diff_configs`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from bml_core.configpaths import diff_configs
from db.errors import RunNotFound
from db.models import Run


def config_diff(engine: Engine, run_ids: Sequence[int]) -> dict[str, dict[int, Any]]:
    """The config keys (dotted paths) that differ between the runs, with each run's value."""
    with engine.connect() as conn:
        rows: dict[int, dict[str, Any]] = dict(
            conn.execute(select(Run.id, Run.config).where(Run.id.in_(list(run_ids)))).all()
        )
    for rid in run_ids:
        if rid not in rows:
            raise RunNotFound(rid)
    return diff_configs({rid: rows[rid] for rid in run_ids})


def environment_diff(engine: Engine, run_ids: Sequence[int]) -> dict[str, dict[int, Any]]:
    """What differs between the runs' recorded environments (`runs.environment`: versions,
    commit, GPU, host, data sha256 by file path), as {dotted key: {run_id: value}}; runs
    that recorded none are left out."""
    with engine.connect() as conn:
        rows: dict[int, Any] = dict(
            conn.execute(select(Run.id, Run.environment).where(Run.id.in_(list(run_ids)))).all()
        )
    for rid in run_ids:
        if rid not in rows:
            raise RunNotFound(rid)
    envs: dict[int, dict[str, Any]] = {}
    for rid in run_ids:
        env = rows[rid]
        if not env:
            continue
        flat = dict(env)
        flat.pop("executable", None)
        data = flat.pop("data", None) or []
        flat["data"] = {str(d.get("path")): d.get("sha256") for d in data}
        envs[rid] = flat
    return diff_configs(envs) if len(envs) > 1 else {}
