"""The run lifecycle, as the worker (and `bml train --db`) drives it:

    create_run -> queued -> claim_run -> running -(heartbeat)-> finish_run -> succeeded | failed | cancelled
                     ^                      |
                     +---- requeue_stale ---+  (no heartbeat for a while; up to max_attempts)

Every transition is one conditional UPDATE, so two workers can never both claim a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, insert, select, update

from bml_core.config import RunConfig, validate_config
from bml_core.schema import is_control
from db.accounts import Actor, authorize, record
from db.engine import write_tx
from db.errors import InvalidRunState, RunNotFound
from db.models import (
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    Event,
    Point,
    Rollup,
    Run,
    RunTag,
    Series,
    Sweep,
    utcnow,
)

# `pruned`: stopped by its tuning study's pruner (`bml tune`, see mark_pruned)
RUN_STATUSES = ("queued", "running", "requeued", "succeeded", "failed", "cancelled", "pruned")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "pruned"})
CLAIMABLE_STATUSES = ("queued", "requeued")
EVENT_LEVELS = ("debug", "info", "warning", "error")
max_traceback_chars = 8_000
max_error_chars = 4_000
max_event_chars = 4_000


def _exists(conn: Connection, run_id: int) -> bool:
    return conn.execute(select(Run.id).where(Run.id == run_id)).first() is not None


def _check_tags(tags: Iterable[str]) -> list[str]:
    out = list(dict.fromkeys(tags))
    for tag in out:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"tag {tag!r} refused: tags are 1 to {MAX_TAG_LENGTH} characters")
        if any(is_control(c) for c in tag):
            raise ValueError(f"tag {tag!r} refused: tags must not contain control characters")
    return out


def check_label(label: str, value: str) -> str:
    """A run's name or group as the store takes it: 1 to MAX_NAME_LENGTH characters, no
    control characters (NUL breaks PostgreSQL)."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"run {label} {value!r} refused: 1 to {MAX_NAME_LENGTH} characters")
    if any(is_control(c) for c in value):
        raise ValueError(f"run {label} {value!r} refused: it must not contain control characters")
    return value


def create_run(
    engine: Engine,
    config: Mapping[str, Any] | RunConfig,
    *,
    name: str | None = None,
    group: str | None = None,
    tags: Iterable[str] | None = None,
    max_attempts: int = 3,
    sweep_id: int | None = None,
    owner: str | None = None,
    rerun_of: int | None = None,
    retry_of: int | None = None,
) -> int:
    """Validate the config (bml_core.config.ConfigError when invalid: nothing is stored),
    insert a `queued` run and return its id. name/group/tags default to the config's.
    `owner`: who launched it; `rerun_of`: the run it exactly reruns; `retry_of`: the run it
    is a retry (clone) of."""
    # the path rules are submit's (bml submit, the form); the worker checks every path against
    # BML_DATA_ROOTS before it opens a file (bml_core.dataspecs.check_dataset_paths)
    cfg = config if isinstance(config, RunConfig) else validate_config(config, path_rules=False)
    name = cfg.name if name is None else name
    group = cfg.group if group is None else group
    check_label("name", name)
    check_label("group", group)
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    tag_list = _check_tags(cfg.tags if tags is None else tags)
    doc = cfg.to_dict()
    doc.update(name=name, group=group, tags=tag_list)
    with write_tx(engine) as conn:
        run_id = conn.execute(
            insert(Run)
            .values(
                name=name,
                group=group,
                status="queued",
                config=doc,
                strategy=cfg.strategy_label,
                dataset=cfg.dataset.name,
                seed=cfg.seed,
                attempt=0,
                max_attempts=max_attempts,
                created_at=utcnow(),
                progress=0.0,
                step=0,
                cancel_requested=False,
                dropped_points=0,
                sweep_id=sweep_id,
                owner=owner,
                rerun_of=rerun_of,
                # named only for a retry, so a store one migration behind still takes new runs
                **({} if retry_of is None else {"retry_of": retry_of}),
            )
            .returning(Run.id)
        ).scalar_one()
        if tag_list:
            conn.execute(insert(RunTag), [{"run_id": run_id, "tag": t} for t in tag_list])
    return int(run_id)


def create_sweep(engine: Engine, name: str, spec: Mapping[str, Any] | None = None) -> int:
    """A sweep row that runs can point to (`create_run(..., sweep_id=...)`)."""
    with write_tx(engine) as conn:
        sweep_id = conn.execute(
            insert(Sweep)
            .values(name=name, spec=dict(spec) if spec else None, created_at=utcnow())
            .returning(Sweep.id)
        ).scalar_one()
    return int(sweep_id)


def claim_run(engine: Engine, run_id: int, worker: str) -> bool:
    """Atomically move a queued/requeued run to `running` (attempt + 1). False when someone
    else has it or it is no longer claimable; RunNotFound for an unknown id."""
    now = utcnow()
    with write_tx(engine) as conn:
        result = conn.execute(
            update(Run)
            .where(Run.id == run_id, Run.status.in_(CLAIMABLE_STATUSES))
            .values(
                status="running",
                attempt=Run.attempt + 1,
                worker=worker[:MAX_NAME_LENGTH],
                started_at=now,
                heartbeat_at=now,
                finished_at=None,
            )
        )
        if result.rowcount == 1:
            return True
        if not _exists(conn, run_id):
            raise RunNotFound(run_id)
        return False


def heartbeat(engine: Engine, run_id: int, progress: float | None = None, step: int | None = None) -> bool:
    """Record that the running run is alive (and its progress 0..1 / step when given).
    Returns True when the run should stop: cancellation was requested, or it is no longer
    `running` (e.g. the reaper requeued it). RunNotFound for an unknown id."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = min(1.0, max(0.0, float(progress)))
    if step is not None:
        values["step"] = int(step)
    with write_tx(engine) as conn:
        conn.execute(update(Run).where(Run.id == run_id, Run.status == "running").values(**values))
        row = conn.execute(select(Run.status, Run.cancel_requested).where(Run.id == run_id)).first()
    if row is None:
        raise RunNotFound(run_id)
    return bool(row.cancel_requested) or row.status != "running"


def finish_run(
    engine: Engine,
    run_id: int,
    status: str,
    error: str | None = None,
    traceback_tail: str | None = None,
    summary: Mapping[str, Any] | None = None,
) -> None:
    """Record the end of a run: status succeeded | failed | cancelled, with the error text,
    the tail of the traceback and the summary JSON when given (None keeps what is there)."""
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"status {status!r} is not a final status ({', '.join(sorted(TERMINAL_STATUSES))})")
    values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    if status == "succeeded":
        values["progress"] = 1.0
    if error is not None:
        values["error"] = error[:max_error_chars]
    if traceback_tail is not None:
        values["traceback_tail"] = traceback_tail[-max_traceback_chars:]
    if summary is not None:
        values["summary"] = dict(summary)
    with write_tx(engine) as conn:
        if conn.execute(update(Run).where(Run.id == run_id).values(**values)).rowcount != 1:
            raise RunNotFound(run_id)


def _authorize_on_run(conn: Connection, actor: Actor | None, action: str, run_id: int) -> None:
    """Check `actor` may do `action` on the run (RunNotFound first); record it in the audit
    trail in the same transaction. No actor: an internal caller (worker, tests), not checked."""
    if actor is None:
        return
    owner = conn.execute(select(Run.owner).where(Run.id == run_id)).first()
    if owner is None:
        raise RunNotFound(run_id)
    authorize(actor, action, owner[0], what=f"run {run_id}")
    record(conn, actor, action, run_id=run_id)


def request_cancel(engine: Engine, run_id: int, actor: Actor | None = None) -> str:
    """Cancel a run: a queued/requeued run becomes `cancelled` at once; a running one gets
    `cancel_requested` (its supervisor stops it). Returns the run's status afterwards.
    With an `actor`: PermissionDenied unless they may (see db.accounts), and audited."""
    with write_tx(engine) as conn:
        _authorize_on_run(conn, actor, "cancel", run_id)
        if (
            conn.execute(
                update(Run)
                .where(Run.id == run_id, Run.status.in_(CLAIMABLE_STATUSES))
                .values(status="cancelled", cancel_requested=True, finished_at=utcnow())
            ).rowcount
            == 1
        ):
            return "cancelled"
        conn.execute(
            update(Run).where(Run.id == run_id, Run.status == "running").values(cancel_requested=True)
        )
        status = conn.execute(select(Run.status).where(Run.id == run_id)).scalar_one_or_none()
    if status is None:
        raise RunNotFound(run_id)
    return str(status)


def cancel_requested(engine: Engine, run_id: int) -> bool:
    with engine.connect() as conn:
        flag = conn.execute(select(Run.cancel_requested).where(Run.id == run_id)).first()
    if flag is None:
        raise RunNotFound(run_id)
    return bool(flag[0])


def _end_attempt(
    conn: Connection,
    run_id: int,
    guard: tuple[ColumnElement[bool], ...],
    attempt: int,
    max_attempts: int,
    cancelled: bool,
    reason: str,
    now: datetime,
) -> str | None:
    """A running attempt that stopped without a result: `cancelled` if that was asked for,
    `requeued` while attempts are left, else `failed` with the reason; plus an event.
    Returns the new status, or None when the guarded UPDATE matched nothing."""
    if cancelled:
        values: dict[str, Any] = {
            "status": "cancelled",
            "finished_at": now,
            "error": reason[:max_error_chars],
        }
    elif attempt < max_attempts:
        values = {"status": "requeued", "worker": None}
    else:
        values = {
            "status": "failed",
            "finished_at": now,
            "error": f"{reason}; no attempts left"[:max_error_chars],
        }
    if conn.execute(update(Run).where(*guard).values(**values)).rowcount != 1:
        return None
    conn.execute(
        insert(Event).values(
            run_id=run_id, time=now, level="warning", message=f"{reason}: {values['status']}"
        )
    )
    return str(values["status"])


def requeue_stale(engine: Engine, heartbeat_timeout_s: float, now: datetime | None = None) -> list[int]:
    """Find `running` runs without a heartbeat for `heartbeat_timeout_s`: those with attempts
    left become `requeued` and their ids are returned (send their task again); the others
    become `failed` with the reason (or `cancelled` when cancellation was requested)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=heartbeat_timeout_s)
    requeued: list[int] = []
    with write_tx(engine) as conn:
        stale = conn.execute(
            select(Run.id, Run.attempt, Run.max_attempts, Run.cancel_requested).where(
                Run.status == "running", Run.heartbeat_at < cutoff
            )
        ).all()
        for run_id, attempt, max_attempts, cancelled in stale:
            guard = (Run.id == run_id, Run.status == "running", Run.heartbeat_at < cutoff)
            reason = (
                f"no heartbeat for more than {heartbeat_timeout_s:g}s (attempt {attempt} of {max_attempts})"
            )
            if _end_attempt(conn, run_id, guard, attempt, max_attempts, cancelled, reason, now) == "requeued":
                requeued.append(int(run_id))
    return requeued


def add_event(engine: Engine, run_id: int, level: str, message: str) -> None:
    if level not in EVENT_LEVELS:
        raise ValueError(f"event level {level!r} is not one of {', '.join(EVENT_LEVELS)}")
    with write_tx(engine) as conn:
        if not _exists(conn, run_id):
            raise RunNotFound(run_id)
        conn.execute(
            insert(Event).values(run_id=run_id, time=utcnow(), level=level, message=message[:max_event_chars])
        )


def delete_run(engine: Engine, run_id: int, force: bool = False, actor: Actor | None = None) -> None:
    """Delete a run with all its data (series, points, rollups, events, tags). A running
    run is refused unless `force` (cancel it first). With an `actor`: admins only, audited."""
    with write_tx(engine) as conn:
        _authorize_on_run(conn, actor, "delete", run_id)
        status = conn.execute(select(Run.status).where(Run.id == run_id)).scalar_one_or_none()
        if status is None:
            raise RunNotFound(run_id)
        if status == "running" and not force:
            raise InvalidRunState(f"run {run_id} is running; cancel it first (or delete with force)")
        series_ids = select(Series.id).where(Series.run_id == run_id).scalar_subquery()
        conn.execute(delete(Point).where(Point.series_id.in_(series_ids)))
        conn.execute(delete(Rollup).where(Rollup.series_id.in_(series_ids)))
        conn.execute(delete(Series).where(Series.run_id == run_id))
        conn.execute(delete(Event).where(Event.run_id == run_id))
        conn.execute(delete(RunTag).where(RunTag.run_id == run_id))
        # its retries stay, no longer linked (runs.retry_of is a foreign key)
        conn.execute(update(Run).where(Run.retry_of == run_id).values(retry_of=None))
        conn.execute(delete(Run).where(Run.id == run_id))


def requeue_run(engine: Engine, run_id: int, reason: str) -> str:
    """A running run whose process stopped without finishing (killed, or its worker shut
    down after a checkpoint): `requeued` while attempts are left (send its task again),
    else `failed` with the reason. Returns the new status (unchanged if not running)."""
    now = utcnow()
    with write_tx(engine) as conn:
        row = conn.execute(select(Run.status, Run.attempt, Run.max_attempts).where(Run.id == run_id)).first()
        if row is None:
            raise RunNotFound(run_id)
        if row.status != "running":
            return str(row.status)
        guard = (Run.id == run_id, Run.status == "running")
        reason = f"{reason} (attempt {row.attempt} of {row.max_attempts})"
        status = _end_attempt(conn, run_id, guard, row.attempt, row.max_attempts, False, reason, now)
    return status or "running"


def record_environment(engine: Engine, run_id: int, environment: Mapping[str, Any]) -> None:
    """Store what the run ran on (versions, commit, hardware, data fingerprints)."""
    with write_tx(engine) as conn:
        if (
            conn.execute(update(Run).where(Run.id == run_id).values(environment=dict(environment))).rowcount
            != 1
        ):
            raise RunNotFound(run_id)


def request_prune(engine: Engine, run_id: int, reason: str) -> str:
    """The study's pruner stopped this trial: ask the run to stop (the `cancel_requested`
    path its supervisor and run process already follow) and say why in its events. Once it
    has stopped, `mark_pruned` records the status `pruned`. Returns the status now."""
    status = request_cancel(engine, run_id)
    add_event(engine, run_id, "info", f"pruned: {reason}")
    if status == "cancelled":  # it had not started: it is pruned at once
        mark_pruned(engine, run_id)
        return "pruned"
    return status


def mark_pruned(engine: Engine, run_id: int) -> bool:
    """A pruned trial's run that has stopped (`cancelled` after `request_prune`) becomes
    `pruned`; False while it is still running (or when it ended some other way)."""
    with write_tx(engine) as conn:
        done = conn.execute(
            update(Run).where(Run.id == run_id, Run.status == "cancelled").values(status="pruned")
        ).rowcount
    return done == 1
