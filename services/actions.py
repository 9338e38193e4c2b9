"""What the CLI and the dashboard call to launch and control runs: submit (validate ->
insert -> enqueue), sweeps, groups of ready configs (`bml reproduce`), cancel, retry,
delete, queue and worker status. Torch-free: the dashboard imports it.

Every action is performed by an `Actor` (db.accounts): the dashboard passes the logged-in
user; otherwise `current_actor()` is `BML_USER` (a stored account) or the local admin.
Permissions are checked here and in db (not only by hiding buttons); PermissionDenied
says who may."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from bml_core.config import ConfigError, RunConfig, apply_override, validate_config
from bml_core.dataspecs import check_dataset_paths
from bml_core.errors import DatasetError
from bml_core.seeds import SeedError, check_seeds, check_sweep_size
from db import (
    Actor,
    authorize,
    create_run,
    create_sweep,
    database_url,
    delete_run,
    get_run,
    list_runs,
    local_admin,
    make_engine,
    request_cancel,
    resolve_actor,
)
from db.accounts import log_action
from db.models import MAX_NAME_LENGTH
from worker.presence import live_workers
from worker.settings import TASK_NAME, SupervisorSettings, broker_url, is_embedded, redact, remove_run_files


class BrokerUnavailable(RuntimeError):
    """A run's task could not be sent; the runs not sent were deleted again (nothing stored)."""


_engines: dict[str, Engine] = {}
_apps: dict[tuple[str, str], Any] = {}


def _engine(engine: Engine | None) -> Engine:
    """The given engine, or one per store URL (the environment may change, e.g. in tests)."""
    if engine is not None:
        return engine
    url = database_url()
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def _celery() -> Any:
    """A Celery app (a producer only) for the broker the environment names now: its URL and,
    on Redis, its key prefix (BML_BROKER_PREFIX, read when the app is made)."""
    from worker.celery_app import make_app

    key = (broker_url(), os.environ.get("BML_BROKER_PREFIX", ""))
    if key not in _apps:
        _apps[key] = make_app(key[0])
    return _apps[key]


def current_actor(engine: Engine | None = None) -> Actor:
    """Who this process acts as: the stored account named by BML_USER, else the local
    admin (the operating-system user). PermissionDenied when BML_USER names no account."""
    name = os.environ.get("BML_USER", "").strip()
    if not name:
        return local_admin()
    return resolve_actor(_engine(engine), name)


def enqueue(run_id: int) -> None:
    """Send `bml.execute_run(run_id)` (retried briefly when the broker hiccups)."""
    _celery().send_task(TASK_NAME, args=[int(run_id)], retry=True)


def _enqueue_all(engine: Engine, run_ids: Sequence[int]) -> None:
    for i, run_id in enumerate(run_ids):
        try:
            enqueue(run_id)
        except Exception as exc:  # noqa: BLE001 - any broker failure: say so on the runs
            reason = (
                f"could not reach the broker at {redact(broker_url())}: {exc}; nothing was stored"
                f" for the {len(run_ids) - i} run(s) not sent; submit again when it is up"
            )
            from db.unsent import discard_unsent

            discard_unsent(engine, run_ids[i:])  # a submit that cannot enqueue stores nothing
            raise BrokerUnavailable(reason) from exc


def check_paths(cfg: RunConfig) -> None:
    """Every file a worker's dataset will read (dataset.path and each path-valued parameter the
    dataset declares) must lie under BML_DATA_ROOTS: ConfigError naming the field otherwise."""
    try:
        check_dataset_paths(cfg.dataset)
    except DatasetError as exc:
        raise ConfigError([(exc.field, str(exc))]) from None


def prepare(config: Mapping[str, Any] | RunConfig, seeds: Sequence[int] | None = None) -> list[RunConfig]:
    """Validate a config (and its data path) into one RunConfig per seed; nothing is stored."""
    cfg = config if isinstance(config, RunConfig) else validate_config(config)
    check_paths(cfg)
    if not seeds:
        return [cfg]
    try:
        checked = check_seeds(seeds)
    except SeedError as exc:
        raise ConfigError([("seeds", str(exc))]) from None
    return [validate_config({**cfg.to_dict(), "seed": s}) for s in checked]


def submit(
    config: Mapping[str, Any] | RunConfig,
    seeds: Sequence[int] | None = None,
    *,
    engine: Engine | None = None,
    actor: Actor | None = None,
) -> list[int]:
    """Validate, store one queued run per seed (the seed overrides the config's) and enqueue
    them, owned by the actor (operators and admins). ConfigError (nothing stored) on invalid
    input; BrokerUnavailable if the broker is down (the runs not sent are deleted again:
    nothing is stored)."""
    eng = _engine(engine)
    act = actor or current_actor(eng)
    authorize(act, "launch", what="runs")
    configs = prepare(config, seeds)
    ids = [create_run(eng, cfg, owner=act.name) for cfg in configs]
    _enqueue_all(eng, ids)
    return ids


def _label(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, Mapping | str) for v in value):
        names = [v if isinstance(v, str) else str(v.get("name", "?")) for v in value]
        return "+".join(names) or "joint"
    if isinstance(value, Mapping):
        return str(value.get("name", json.dumps(value, sort_keys=True)))
    return str(value)


DEFAULT_RUN_NAME = "run"  # RunConfig's name when nobody typed one


def combo_label(keys: Sequence[str], combo: Sequence[Any]) -> str:
    """`strategies=opm,lr=0.01`: one sweep setting, each key by its last part."""
    return ",".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in zip(keys, combo, strict=True))


def sweep_run_name(run_name: str, sweep_name: str, label: str, seed: int) -> str:
    """The name of one run of a sweep (issue 25: the typed name was replaced without a word):
    `RUN NAME [setting] · seed S`, the typed run name first; the sweep's name instead when the
    run name is empty or left at its default (`run`). At most MAX_NAME_LENGTH characters, the
    setting and seed kept."""
    prefix = run_name.strip()
    if not prefix or prefix == DEFAULT_RUN_NAME:
        prefix = sweep_name.strip()
    tail = f" [{label}] · seed {seed}"
    room = MAX_NAME_LENGTH - len(tail)
    if room < 1:  # a setting longer than a name may be: the name first, cut at the limit
        return (prefix[:40] + tail)[:MAX_NAME_LENGTH]
    return prefix[:room] + tail


def expand_grid(
    base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], seeds: Sequence[int], name: str
) -> list[RunConfig]:
    """Every combination of the grid's values (dotted config paths) times every seed, all in
    group `name`, each run named by `sweep_run_name` (the base config's name first). Validates
    every combination first: one ConfigError lists them all."""
    if not grid:
        raise ConfigError([("grid", "a sweep needs at least one key with a list of values")])
    keys = list(grid)
    for key in keys:
        if not isinstance(grid[key], Sequence) or isinstance(grid[key], str) or not grid[key]:
            raise ConfigError([(f"grid.{key}", "needs a non-empty list of values")])
    try:
        seeds = check_seeds(seeds) if seeds else seeds
        combos = 1
        for key in keys:
            combos *= len(grid[key])
        check_sweep_size(combos * max(1, len(seeds or [])))
    except SeedError as exc:
        raise ConfigError([("seeds", str(exc))]) from None
    configs: list[RunConfig] = []
    errors: list[tuple[str, str]] = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        raw = copy.deepcopy(dict(base))
        label = combo_label(keys, combo)
        try:
            for key, value in zip(keys, combo, strict=True):
                apply_override(raw, key.split("."), copy.deepcopy(value))
            raw["group"] = name
            for seed in seeds or [int(raw.get("seed", 0))]:
                one = {**raw, "seed": seed}
                one["name"] = sweep_run_name(str(base.get("name") or ""), name, label, seed)
                configs.extend(prepare(one))
        except ConfigError as exc:
            errors.extend((f"{label}: {path}", msg) for path, msg in exc.errors)
    if errors:
        raise ConfigError(errors)
    return configs


def submit_sweep(
    base: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    name: str,
    engine: Engine | None = None,
    actor: Actor | None = None,
) -> tuple[int, list[int]]:
    """A grid over strategies x parameters x seeds as one group and one sweep row."""
    eng = _engine(engine)
    act = actor or current_actor(eng)
    authorize(act, "launch", what="a sweep")
    configs = expand_grid(base, grid, seeds, name)
    sweep_id = create_sweep(eng, name, {"base": dict(base), "grid": dict(grid), "seeds": list(seeds)})
    ids = [create_run(eng, cfg, sweep_id=sweep_id, owner=act.name) for cfg in configs]
    _enqueue_all(eng, ids)
    return sweep_id, ids


def submit_group(
    configs: Sequence[RunConfig],
    *,
    name: str,
    spec: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    actor: Actor | None = None,
) -> tuple[int, list[int]]:
    """Validated configs (e.g. a paper's grid of presets x seeds) stored as one sweep, all
    in group `name`, and enqueued. Returns (sweep id, run ids)."""
    eng = _engine(engine)
    act = actor or current_actor(eng)
    authorize(act, "launch", what=f"group {name!r}")
    for cfg in configs:
        check_paths(cfg)
    sweep_id = create_sweep(eng, name, dict(spec) if spec else None)
    ids = [create_run(eng, cfg, group=name, sweep_id=sweep_id, owner=act.name) for cfg in configs]
    _enqueue_all(eng, ids)
    return sweep_id, ids


def cancel(run_id: int, *, engine: Engine | None = None, actor: Actor | None = None) -> str:
    """Cancel: a queued run ends at once; a running one is stopped by its supervisor.
    Operators cancel their own runs, admins any (audited)."""
    eng = _engine(engine)
    return request_cancel(eng, run_id, actor=actor or current_actor(eng))


def retry_name(name: str, run_id: int) -> str:
    """`NAME (retry of #N)`; a retry of a retry names the run it was retried from, once."""
    base = re.sub(r" \(retry of #\d+\)$", "", name)
    suffix = f" (retry of #{run_id})"
    return base[: MAX_NAME_LENGTH - len(suffix)] + suffix


def _refuse_own_loop(run: Any, action: str) -> None:
    """An own-loop run (bml_core.init) was trained by the user's process: its config is no
    config a worker can run, so it cannot be retried or rerun."""
    from db.own_runs import is_own_loop

    if is_own_loop(run.worker):
        raise ValueError(
            f"run {run.id} is an own-loop run (trained by the user's own script through bml_core.init): "
            f"there is no config a worker can {action}; run the script again instead"
        )


def retry(run_id: int, *, engine: Engine | None = None, actor: Actor | None = None) -> int:
    """A clone of the run (same config) as a new queued run owned by the actor, linked to
    it (`retry_of`); returns its id. Operators retry their own runs, admins any (audited)."""
    return _queue_copy("retry", run_id, engine, actor)


def _queue_copy(action: str, run_id: int, engine: Engine | None, actor: Actor | None) -> int:
    """retry and rerun: the run's config as a new queued run owned by the actor, linked to
    the original (`retry_of` / `rerun_of`), audited and enqueued; returns its id."""
    eng = _engine(engine)
    act = actor or current_actor(eng)
    run = get_run(eng, run_id)
    _refuse_own_loop(run, action)
    authorize(act, action, run.owner, what=f"run {run_id}")
    if action == "retry":
        name, link = retry_name(run.name, run_id), {"retry_of": run_id}
    else:
        name, link = run.name, {"rerun_of": run_id}
    new_id = create_run(eng, run.config, name=name, group=run.group, tags=run.tags, owner=act.name, **link)
    log_action(eng, act, action, run_id=run_id, detail=f"as run {new_id}")
    _enqueue_all(eng, [new_id])
    return new_id


@dataclass
class RerunCheck:
    """What differs between a run's recorded environment and now: `blocking` (a changed or
    missing data file, another major version) must be confirmed before queueing."""

    run_id: int
    blocking: list[str]
    notes: list[str]


def rerun_check(run_id: int, *, engine: Engine | None = None) -> RerunCheck:
    """Compare the run's recorded environment with this machine's (versions) and its data
    files as they are now (sha256)."""
    from bml_core.provenance import compare, file_fingerprint, static_environment

    run = get_run(_engine(engine), run_id)
    recorded = run.environment or {}
    current = static_environment()
    current["data"] = [
        file_fingerprint(d["path"]) for d in recorded.get("data") or [] if os.path.isfile(d["path"])
    ]
    blocking, notes = compare(run.environment, current)
    return RerunCheck(run_id, blocking, notes)


def rerun(run_id: int, *, engine: Engine | None = None, actor: Actor | None = None) -> int:
    """A new queued run with the original's resolved config and seed, linked to it
    (`rerun_of`), owned by the actor (operators and admins; audited). Call `rerun_check`
    first to tell the user what changed."""
    return _queue_copy("rerun", run_id, engine, actor)


def delete(run_id: int, *, engine: Engine | None = None, actor: Actor | None = None) -> None:
    """Delete a run and all its data (a running run must be cancelled first). Admins only
    (audited)."""
    eng = _engine(engine)
    run = get_run(eng, run_id)
    delete_run(eng, run_id, actor=actor or current_actor(eng))
    remove_run_files(run_id, run.created_at)  # its checkpoints and logs too


@dataclass
class WorkerStatus:
    name: str
    active_run_ids: list[int] = field(default_factory=list)
    ok: bool = True


@dataclass
class QueueStatus:
    queued: int
    running: int
    workers: list[WorkerStatus]
    broker: str
    error: str | None = None


def queue_status(timeout_s: float = 1.0, *, engine: Engine | None = None) -> QueueStatus:
    """Runs waiting and running (from the store) and the workers answering a broadcast
    within `timeout_s`, each with the run it is executing."""
    eng = _engine(engine)
    queued = list_runs(eng, status=["queued", "requeued"], limit=1).total
    running_page = list_runs(eng, status="running", limit=None)
    workers: dict[str, WorkerStatus] = {}
    error = None
    if is_embedded():
        # the embedded broker carries no broadcasts: workers announce themselves in files
        max_age_s = 3 * SupervisorSettings.from_env().reaper_interval_s + 1
        workers = {name: WorkerStatus(name=name) for name in live_workers(max_age_s)}
    else:
        try:
            replies = _celery().control.inspect(timeout=timeout_s).active() or {}
            for name, tasks in replies.items():
                ids = [int(t["args"][0]) for t in tasks if t.get("args") and isinstance(t["args"][0], int)]
                workers[name] = WorkerStatus(name=name, active_run_ids=ids)
        except Exception as exc:  # noqa: BLE001 - the broker may be away; the store still answers
            error = f"workers did not answer: {exc}"
    for run in running_page.runs:  # the store knows which worker runs what
        status = workers.setdefault(run.worker or "?", WorkerStatus(name=run.worker or "?", ok=False))
        if run.id not in status.active_run_ids:
            status.active_run_ids.append(run.id)
    return QueueStatus(
        queued=queued,
        running=running_page.total,
        workers=sorted(workers.values(), key=lambda w: w.name),
        broker=redact(broker_url()),
        error=error,
    )
