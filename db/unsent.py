"""Undo a submission whose tasks could not be sent: the runs that never reached the broker
(and their sweep, once it holds no run) are deleted, so that a failed `bml submit` stores
nothing (issue 25)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, delete, exists, select

from db.engine import write_tx
from db.models import Run, Sweep
from db.runs import delete_run


def discard_unsent(engine: Engine, run_ids: Sequence[int]) -> None:
    """Delete these (queued, never sent) runs, and each sweep of theirs left empty."""
    with engine.connect() as conn:
        sweeps = {
            s for s in conn.execute(select(Run.sweep_id).where(Run.id.in_(list(run_ids)))).scalars() if s
        }
    for run_id in run_ids:
        delete_run(engine, run_id, force=True)
    if sweeps:
        with write_tx(engine) as conn:
            for sweep_id in sweeps:
                if not conn.execute(select(exists().where(Run.sweep_id == sweep_id))).scalar():
                    conn.execute(delete(Sweep).where(Sweep.id == sweep_id))
