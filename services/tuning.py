"""The driver of a tuning study (issue 23): an Optuna study whose trials are ordinary runs on
the workers. The driver (`bml tune`, or the detached process the Tune form starts through
services.studies) holds Optuna's sampler and pruner — no Optuna object in a worker: it asks
for parameters, submits each trial's runs (group = the study) through services.actions, polls
their stored evaluation series, reports them to the trial and prunes through the cancel path
(status `pruned`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def distributions(space: list[Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for p in space:
        if p.kind == "float":
            out[p.key] = FloatDistribution(float(p.low), float(p.high), log=p.log)
        elif p.kind == "int":
            out[p.key] = IntDistribution(int(p.low), int(p.high))
        else:
            out[p.key] = CategoricalDistribution(list(p.choices))
    return out


def make_sampler(name: str, space: list[Any]) -> Any:
    """Optuna's sampler by name (seeded); ValueError naming the option when it cannot be built."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=0)
    if name == "grid":
        grid: dict[str, list[Any]] = {}
        for p in space:
            if p.kind == "float":
                raise ValueError(f"--sampler grid: {p.path} is a float range; give cat(...) or int(lo,hi)")
            grid[p.key] = list(p.choices) if p.kind == "cat" else list(range(int(p.low), int(p.high) + 1))
        return optuna.samplers.GridSampler(grid, seed=0)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ValueError("--sampler cmaes needs the package cmaes (pip install cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=0)
    return optuna.samplers.TPESampler(seed=0)


def make_pruner(name: str, evals: int) -> Any:
    import optuna

    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(evals, 1))
    return optuna.pruners.NopPruner()


def _series(engine: Any, run_id: int, metric: str) -> list[float]:
    from db.errors import SeriesNotFound
    from db.queries import series_since

    try:
        data = series_since(engine, run_id, None, keys=[metric])
    except SeriesNotFound:  # not evaluated yet
        return []
    return list(data[metric].values) if metric in data else []


def drive(
    engine: Any,
    study: Any,
    raw: dict[str, Any],
    space: list[Any],
    opts: dict[str, Any],
    echo: Callable[[str], None] = print,
) -> None:
    """Run the study to `trials` finished trials, at most `parallel` at a time."""
    import optuna

    import db
    from bml_core.tune import trial_config
    from services import actions as client

    dists = distributions(space)
    metric, seeds, maximize = opts["metric"], opts["seeds"], opts["direction"] == "maximize"
    active: dict[int, tuple[Any, list[int]]] = {}
    pruning: set[int] = set()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):  # --resume
        ids = list(t.user_attrs.get("run_ids") or [])
        trial = optuna.trial.Trial(study, t._trial_id)
        if ids:
            active[t.number] = (trial, ids)
        else:
            tell(study, trial, state=optuna.trial.TrialState.FAIL)
    while True:
        done = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
        while len(active) < opts["parallel"] and done + len(active) < opts["trials"]:
            trial = study.ask(dists)
            cfg = trial_config(raw, trial.params)
            cfg["group"] = study.study_name
            cfg["name"] = f"{study.study_name}-t{trial.number}"
            cfg["tags"] = [f"trial:{trial.number}"] + [f"{k}={v}"[:100] for k, v in trial.params.items()]
            ids = client.submit(cfg, seeds or None, engine=engine)
            trial.set_user_attr("run_ids", ids)
            active[trial.number] = (trial, ids)
            echo(f"trial {trial.number}: runs {ids} {trial.params}")
        if not active:
            break
        for number, (trial, ids) in list(active.items()):
            values = [_series(engine, i, metric) for i in ids]
            n = min(len(v) for v in values)
            reported = set(trial.storage.get_trial(trial._trial_id).intermediate_values)
            for k in range(n):
                if k + 1 not in reported:
                    trial.report(sum(v[k] for v in values) / len(values), k + 1)
            if number not in pruning and n and trial.should_prune():
                pruning.add(number)
                for i in ids:
                    db.request_prune(engine, i, f"study {study.study_name} trial {number} at evaluation {n}")
            runs = [db.get_run(engine, i) for i in ids]
            if all(r.status in db.TERMINAL_STATUSES for r in runs):
                # read again: the series above may predate the runs' last evaluations (a run
                # that ended between that read and this status read); a terminal run's series
                # are all committed (the sink is flushed before the status is written)
                values = [_series(engine, i, metric) for i in ids]
                # a run that finished before its stop took effect keeps its result
                if number in pruning and [db.mark_pruned(engine, i) for i in ids].count(True):
                    tell(study, trial, state=optuna.trial.TrialState.PRUNED)
                    echo(f"trial {number}: pruned after {n} evaluation(s)")
                elif all(r.status == "succeeded" for r in runs) and all(values):
                    best = [max(v) if maximize else min(v) for v in values]
                    value = sum(best) / len(best)
                    tell(study, trial, value)
                    echo(f"trial {number}: {metric} {value:.4f}")
                else:
                    tell(study, trial, state=optuna.trial.TrialState.FAIL)
                    echo(f"trial {number}: failed ({', '.join(r.status for r in runs)})")
                del active[number]
        time.sleep(opts["poll"])


def tell(study: Any, trial: Any, *args: Any, **kwargs: Any) -> None:
    """study.tell, where the grid sampler's "every grid point is taken" stop (Study.stop, which
    Optuna refuses outside optimize()) is not an error: the trial's state is stored before it
    is raised, and the driver ends on its own trial budget."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
