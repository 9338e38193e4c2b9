"""The Runs page's data: filters, one page of runs as table rows (status, progress, ETA,
strategy, dataset, group, owner, best validation accuracy, a link to the Live page), and the
actions on a run (cancel, retry as a clone, rerun exactly, delete) through `services.actions`,
as the logged-in actor."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine

import db
from app.alerts import counts_text
from app.progress import eta_seconds, format_duration
from db.own_runs import is_own_loop, reap_own_runs

page_size_runs = 25
ACTIVE_STATUSES = ("queued", "running", "requeued")


@dataclass(frozen=True)
class RunFilter:
    """What the Runs page filters on (None or empty: no filter)."""

    statuses: tuple[str, ...] = ()
    strategy: str | None = None
    dataset: str | None = None
    group: str | None = None
    text: str | None = None
    owner: str | None = None


def best_val_accuracy(engine: Engine, run: db.RunInfo) -> float | None:
    """The run's best validation accuracy: from its summary when it has one, else the
    highest `val/acc` so far (read from one downsampled bucket, not the series)."""
    summary = run.summary or {}
    val = summary.get("val") if isinstance(summary, dict) else None
    if isinstance(val, dict) and isinstance(val.get("acc"), int | float):
        return float(val["acc"])
    if run.status == "queued":
        return None
    try:
        ds = db.downsampled_series(engine, run.id, "val/acc", max_buckets=1)
    except db.StoreError:
        return None
    finite = [v for v in ds.maxs if math.isfinite(v)]
    return max(finite) if finite else None


def filter_options(engine: Engine) -> dict[str, list[str]]:
    """Values to offer in the filters: strategies, datasets, groups and owners present in
    the store (distinct values read by the store, never a listing of every run)."""
    return db.filter_values(engine)


def page_count(total: int, page_size: int = page_size_runs) -> int:
    return max(1, -(-total // page_size))


# the Runs page counts matching runs up to this many ("10000+ run(s) match" beyond)
count_cap = 10_000


def runs_page(
    engine: Engine,
    flt: RunFilter,
    page: int,
    page_size: int = page_size_runs,
    before_id: int | None = None,
) -> db.RunPage:
    """Page `page` (1-based) of the runs matching the filter, newest first; with `before_id`
    (the last id of the page before) the page is read by keyset, not by offset, and `page`
    only numbers it. Own-loop runs whose process died (no heartbeat) are failed first: no
    worker watches them."""
    with contextlib.suppress(Exception):  # a read-only or busy store: the next refresh tries again
        reap_own_runs(engine)
    return db.list_runs(
        engine,
        status=list(flt.statuses) or None,
        strategy=flt.strategy or None,
        dataset=flt.dataset or None,
        group=flt.group or None,
        text=(flt.text or "").strip() or None,
        owner=flt.owner or None,
        limit=page_size,
        offset=0 if before_id is not None else (max(1, page) - 1) * page_size,
        before_id=before_id,
        count_limit=count_cap,
    )


def table_rows(engine: Engine, runs: list[db.RunInfo], now: datetime | None = None) -> pd.DataFrame:
    """The runs as the table shows them (one row per run, newest first)."""
    rows: list[dict[str, Any]] = []
    alerts = db.alert_counts(engine, [r.id for r in runs])
    for r in runs:
        best = best_val_accuracy(engine, r)
        rows.append(
            {
                "id": r.id,
                "name": r.name + (" [own loop]" if is_own_loop(r.worker) else ""),
                # a running run asked to stop: "cancelling" (fits the column, issue 25)
                "status": "cancelling" if r.cancel_requested and r.status == "running" else r.status,
                "progress": round(r.progress * 100.0, 1),
                "ETA": format_duration(eta_seconds(r, now)),
                "strategy": r.strategy,
                "dataset": r.dataset,
                "group": r.group,
                "owner": r.owner or "—",
                "seed": r.seed,
                "best val acc": "—" if best is None else f"{best:.4f}",
                "attempt": r.attempt,
                "retry of": "—" if r.retry_of is None else f"#{r.retry_of}",
                "alerts": counts_text(alerts.get(r.id, {})),
                "created": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "live": f"/live?run={r.id}",
            }
        )
    columns = [
        "id",
        "name",
        "status",
        "progress",
        "strategy",
        "live",
        "ETA",
        "best val acc",
        "alerts",
        "dataset",
        "group",
        "owner",
        "seed",
        "attempt",
        "retry of",
        "created",
    ]  # fmt: skip  (what must be seen without scrolling comes first)
    return pd.DataFrame(rows, columns=columns)


def lineage(run: db.RunInfo) -> str | None:
    """`retry of #N` (runs.retry_of: a clone made by Retry) or `an exact rerun of #N`; None
    for a run launched on its own (an identical relaunch included)."""
    if run.retry_of is not None:
        return f"retry of #{run.retry_of}"
    if run.rerun_of is not None:
        return f"an exact rerun of #{run.rerun_of}"
    return None


def allowed_actions(run: db.RunInfo) -> dict[str, bool]:
    """Which actions make sense for the run: cancel while it can still run, retry once it
    ended, rerun, delete unless it is running (cancel it first). An own-loop run's training is
    the user's process: Cancel sets its flag (the process sees `run.should_stop`), but no
    worker can train a clone of it (no retry, no rerun)."""
    own = is_own_loop(run.worker)
    return {
        "cancel": run.status in ACTIVE_STATUSES and not run.cancel_requested,
        "retry": run.status in db.TERMINAL_STATUSES and not own,
        "rerun": not own,
        "delete": run.status != "running",
    }


def permitted_actions(actor: db.Actor, run: db.RunInfo) -> dict[str, bool]:
    """Which actions the actor's role allows on this run (the page hides the others;
    services.actions refuses them anyway)."""
    return {action: db.allowed(actor, action, run.owner) for action in ("cancel", "retry", "rerun", "delete")}


@dataclass
class ActionResult:
    message: str
    ok: bool
    new_run_id: int | None = None


def run_action(action: str, run_id: int, engine: Engine, actor: db.Actor | None = None) -> ActionResult:
    """Cancel, retry or delete a run through services.actions as `actor`; the outcome as a message."""
    from services import actions as client

    try:
        if action == "cancel":
            status = client.cancel(run_id, engine=engine, actor=actor)
            if status == "running":
                what = "asked to stop: it is cancelling now and ends within seconds"
            else:
                what = status if status in ("cancelled", "pruned") else f"is {status}"
            return ActionResult(f"Run {run_id} {what}.", True)
        if action == "retry":
            new_id = client.retry(run_id, engine=engine, actor=actor)
            new = db.get_run(engine, new_id)
            return ActionResult(
                f'Run {run_id} cloned as run {new_id} "{new.name}" ({new.status}).', True, new_id
            )
        if action == "delete":
            client.delete(run_id, engine=engine, actor=actor)
            return ActionResult(f"Run {run_id} and all its data deleted.", True)
        if action == "rerun":
            new_id = client.rerun(run_id, engine=engine, actor=actor)
            status = db.get_run(engine, new_id).status
            return ActionResult(f"Run {run_id} rerun exactly as run {new_id} ({status}).", True, new_id)
    except db.PermissionDenied as exc:
        return ActionResult(f"Refused: {exc}", False)
    except db.RunNotFound:
        return ActionResult(f"Run {run_id} no longer exists.", False)
    except db.InvalidRunState as exc:
        return ActionResult(str(exc), False)
    except Exception as exc:  # noqa: BLE001 - broker or store trouble: shown as is
        return ActionResult(f"{action} of run {run_id} failed: {type(exc).__name__}: {exc}", False)
    raise ValueError(f"unknown action {action!r}: cancel, retry, rerun or delete")
