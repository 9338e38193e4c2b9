"""Runs trained by the user's own loop (`bml_core.init`), not by a worker.

Such a run is created `running` with attempt 1 of 1 (nothing can requeue it: no worker holds
its code), tagged `own-loop`, and its `worker` column names the process (`own-loop@host:pid`).
Its DbMetricSink heartbeats it; when the process dies the heartbeat stops, and the reaper
of any worker (db.runs.requeue_stale: no attempts left -> `failed`) or `reap_own_runs` below
(called by every `bml_core.init` and the Runs page) marks it failed."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from db.engine import write_tx
from db.models import MAX_NAME_LENGTH, Event, Run, RunTag, utcnow
from db.runs import _check_tags, check_label, max_error_chars

OWN_LOOP_TAG = "own-loop"
OWN_LOOP_WORKER_PREFIX = "own-loop@"
DEFAULT_STALE_AFTER_S = 30.0


def own_loop_stale_after_s() -> float:
    """BML_OWN_LOOP_STALE_AFTER_S (default 30 s): an own-loop run whose heartbeat is older
    is failed by `reap_own_runs`."""
    raw = os.environ.get("BML_OWN_LOOP_STALE_AFTER_S", "")
    try:
        return float(raw) if raw else DEFAULT_STALE_AFTER_S
    except ValueError:
        raise ValueError(f"BML_OWN_LOOP_STALE_AFTER_S={raw!r} is not a number of seconds") from None


def create_own_run(
    engine: Engine,
    *,
    name: str,
    group: str,
    config: Mapping[str, Any],
    strategy: str = "joint",
    dataset: str = "own",
    seed: int = 0,
    tags: Iterable[str] = (),
    owner: str | None = None,
) -> int:
    """Insert a `running` own-loop run (attempt 1 of 1, heartbeat now) and return its id.
    `config` is the JSON document shown and compared (bml_core.tracking builds it)."""
    check_label("name", name)
    check_label("group", group)
    tag_list = _check_tags([*tags, OWN_LOOP_TAG])
    now = utcnow()
    worker = f"{OWN_LOOP_WORKER_PREFIX}{socket.gethostname()}:{os.getpid()}"[:MAX_NAME_LENGTH]
    with write_tx(engine) as conn:
        run_id = conn.execute(
            insert(Run)
            .values(
                name=name,
                group=group,
                status="running",
                config={**dict(config), "tags": tag_list},
                strategy=strategy[:MAX_NAME_LENGTH],
                dataset=dataset[:MAX_NAME_LENGTH],
                seed=int(seed),
                attempt=1,
                max_attempts=1,
                worker=worker,
                created_at=now,
                started_at=now,
                heartbeat_at=now,
                progress=0.0,
                step=0,
                cancel_requested=False,
                dropped_points=0,
                owner=owner,
            )
            .returning(Run.id)
        ).scalar_one()
        conn.execute(insert(RunTag), [{"run_id": run_id, "tag": t} for t in tag_list])
        conn.execute(
            insert(Event).values(
                run_id=run_id, time=now, level="info", message=f"own training loop started ({worker})"
            )
        )
    return int(run_id)


def is_own_loop(worker: str | None) -> bool:
    return bool(worker) and str(worker).startswith(OWN_LOOP_WORKER_PREFIX)


def reap_own_runs(engine: Engine, stale_after_s: float | None = None) -> list[int]:
    """Mark `failed` every running own-loop run whose heartbeat is older than stale_after_s
    (its process died: SIGKILL, power loss); returns their ids. Worker runs are left to the
    workers' reaper (they may be requeued)."""
    timeout = own_loop_stale_after_s() if stale_after_s is None else float(stale_after_s)
    now = utcnow()
    cutoff = now - timedelta(seconds=timeout)
    guard = (
        Run.status == "running",
        Run.heartbeat_at < cutoff,
        Run.worker.like(OWN_LOOP_WORKER_PREFIX + "%"),
    )
    reason = f"the training process stopped sending heartbeats for more than {timeout:g}s (killed?)"
    failed: list[int] = []
    with write_tx(engine) as conn:
        for (run_id,) in conn.execute(select(Run.id).where(*guard)).all():
            changed = conn.execute(
                update(Run)
                .where(Run.id == run_id, *guard)
                .values(status="failed", finished_at=now, error=reason[:max_error_chars])
            ).rowcount
            if changed == 1:
                conn.execute(
                    insert(Event).values(run_id=run_id, time=now, level="error", message=f"{reason}: failed")
                )
                failed.append(int(run_id))
    return failed


def own_run_should_stop(engine: Engine, run_id: int) -> bool:
    """The own-loop process's poll (bml_core.tracking): cancel requested (the Runs page's
    Cancel, `bml cancel`), or the run is no longer `running` (failed by the reaper, deleted)."""
    with engine.connect() as conn:
        row = conn.execute(select(Run.status, Run.cancel_requested).where(Run.id == run_id)).first()
    return row is None or bool(row.cancel_requested) or row.status != "running"


def update_own_config(engine: Engine, run_id: int, config: Mapping[str, Any]) -> None:
    """Replace an own-loop run's config document (its hyperparameters arrived after it started)."""
    with write_tx(engine) as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(config=dict(config)))
