"""`bml tune` (issue 23): an Optuna study whose trials are ordinary runs on the workers. This
process is the driver (no Optuna object in a worker): it asks Optuna for parameters, submits
each trial's runs (group = the study) through services.actions, polls their stored evaluation
series, reports them to the trial and prunes through the cancel path (status `pruned`).
`bml study show S [--json]` reads a study back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from bml_cli.common import EXIT_INVALID, fail, invalid_input_exits
from services.studies import PRUNERS, SAMPLERS


def _distributions(space: list[Any]) -> dict[str, Any]:
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


def _sampler(name: str, space: list[Any]) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=0)
    if name == "grid":
        grid: dict[str, list[Any]] = {}
        for p in space:
            if p.kind == "float":
                raise fail(f"error: --sampler grid: {p.path} is a float range; give cat(...) or int(lo,hi)")
            grid[p.key] = list(p.choices) if p.kind == "cat" else list(range(int(p.low), int(p.high) + 1))
        return optuna.samplers.GridSampler(grid, seed=0)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise fail("error: --sampler cmaes needs the package cmaes (pip install cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=0)
    return optuna.samplers.TPESampler(seed=0)


def _pruner(name: str, evals: int) -> Any:
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


def drive(engine: Any, study: Any, raw: dict[str, Any], space: list[Any], opts: dict[str, Any]) -> None:
    """Run the study to `trials` finished trials, at most `parallel` at a time."""
    import optuna

    import db
    from bml_core.tune import trial_config
    from services import actions as client

    dists = _distributions(space)
    metric, seeds, maximize = opts["metric"], opts["seeds"], opts["direction"] == "maximize"
    active: dict[int, tuple[Any, list[int]]] = {}
    pruning: set[int] = set()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):  # --resume
        ids = list(t.user_attrs.get("run_ids") or [])
        trial = optuna.trial.Trial(study, t._trial_id)
        if ids:
            active[t.number] = (trial, ids)
        else:
            _tell(study, trial, state=optuna.trial.TrialState.FAIL)
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
            typer.echo(f"trial {trial.number}: runs {ids} {trial.params}")
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
                # a run that finished before its stop took effect keeps its result
                if number in pruning and [db.mark_pruned(engine, i) for i in ids].count(True):
                    _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
                    typer.echo(f"trial {number}: pruned after {n} evaluation(s)")
                elif all(r.status == "succeeded" for r in runs) and all(values):
                    best = [max(v) if maximize else min(v) for v in values]
                    value = sum(best) / len(best)
                    _tell(study, trial, value)
                    typer.echo(f"trial {number}: {metric} {value:.4f}")
                else:
                    _tell(study, trial, state=optuna.trial.TrialState.FAIL)
                    typer.echo(f"trial {number}: failed ({', '.join(r.status for r in runs)})")
                del active[number]
        time.sleep(opts["poll"])


def _tell(study: Any, trial: Any, *args: Any, **kwargs: Any) -> None:
    """study.tell, where the grid sampler's "every grid point is taken" stop (Study.stop, which
    Optuna refuses outside optimize()) is not an error: the trial's state is stored before it
    is raised, and the driver ends on its own trial budget."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def register(app: typer.Typer) -> None:
    @app.command()
    def tune(
        config: Path = typer.Argument(None, help="run config (YAML or JSON) the trials start from"),
        space: list[str] = typer.Option(
            None, "--space", help="PATH=float(lo,hi[,log])|int(lo,hi)|cat(a,b,...)"
        ),
        trials: int = typer.Option(
            None,
            "--trials",
            help="trial budget of the study (finished trials); default 20, --resume: the study's",
        ),
        parallel: int = typer.Option(None, "--parallel", help="trials running at a time (default 1)"),
        metric: str = typer.Option("val/acc", "--metric", help="the evaluation series to optimise"),
        direction: str = typer.Option("maximize", "--direction", help="maximize | minimize"),
        sampler: str = typer.Option(None, "--sampler", help="tpe (default) | random | grid | cmaes"),
        pruner: str = typer.Option(None, "--pruner", help="asha (default) | median | hyperband | none"),
        seeds: str = typer.Option(None, "--seeds", help="seeds per trial, averaged: 0,1"),
        name: str = typer.Option(None, "--name", help="study name (= the runs' group)"),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="this process drives the study to its end"),
        resume: str = typer.Option(None, "--resume", help="continue the study S after its driver died"),
        poll: float = typer.Option(1.0, "--poll", help="seconds between polls of the trials' series"),
    ) -> None:
        """Tune a config's parameters with Optuna; trials are runs on the workers (exit 2: bad input)."""
        import optuna

        from bml_cli.store_cmd import _engine
        from bml_core.config import read_config_file
        from bml_core.seeds import SeedError, parse_seeds
        from bml_core.tune import check_metric, normalized, parse_space, space_signature, trial_config
        from db.studies import optuna_storage
        from services import actions as client

        if trials is not None and trials < 1:
            raise fail(f"error: --trials {trials}: give at least 1 trial")
        if parallel is not None and parallel < 1:
            raise fail(f"error: --parallel {parallel}: give at least 1")
        if direction not in ("maximize", "minimize"):
            raise fail(f"error: --direction {direction!r}: maximize or minimize")
        if sampler is not None and sampler not in SAMPLERS:
            raise fail(f"error: --sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
        if pruner is not None and pruner not in PRUNERS:
            raise fail(f"error: --pruner {pruner!r}: one of {', '.join(PRUNERS)}")
        engine = _engine()
        storage = optuna_storage(engine)
        study_name = resume or name
        stored = None
        if study_name:
            try:
                stored = optuna.load_study(study_name=study_name, storage=storage)
            except KeyError:
                if resume:
                    raise fail(
                        f"error: --resume {resume}: no study of that name (see `bml study show`)"
                    ) from None
        if resume and stored is not None:
            attrs = stored.user_attrs
            raw, texts = attrs["config"], attrs["space_texts"]
            metric, direction, seed_list = attrs["metric"], attrs["direction"], attrs["seeds"]
            # the budget and settings the study was started with, unless given again
            trials = trials or int(attrs.get("trials") or 20)
            parallel = parallel or int(attrs.get("parallel") or 1)
            sampler = str(sampler or attrs.get("sampler") or "tpe")
            pruner = str(pruner or attrs.get("pruner") or "asha")
        else:
            if config is None:
                raise fail("error: give the CONFIG file the trials start from (or --resume S)")
            with invalid_input_exits():
                raw = normalized(read_config_file(config))
            texts = list(space or [])
            try:
                seed_list = parse_seeds(seeds) if seeds else []
            except SeedError as exc:
                raise fail(f"error: --seeds: {exc}") from None
        with invalid_input_exits():
            params = parse_space(raw, texts)
            check_metric(raw, metric)
            low = {p.key: (p.choices[0] if p.kind == "cat" else p.low) for p in params}
            client.prepare(trial_config(raw, low), seed_list or None)
        signature = space_signature(params)
        if stored is not None and stored.user_attrs.get("space") != signature:
            raise fail(
                f"error: --name {study_name}: the study exists with another search space "
                f"({json.dumps(stored.user_attrs.get('space'))}); give another --name"
            )
        trials, parallel = trials or 20, parallel or 1
        sampler, pruner = sampler or "tpe", pruner or "asha"
        evals = int(raw.get("train", {}).get("epochs", 20) or 20)
        study = optuna.create_study(
            study_name=study_name or f"study-{int(time.time())}",
            storage=storage,
            sampler=_sampler(sampler, params),
            pruner=_pruner(pruner, evals),
            direction=direction,  # type: ignore[arg-type]  # checked above
            load_if_exists=True,
        )
        if stored is None:
            for key, value in {
                "config": raw, "space_texts": texts, "space": signature, "metric": metric,
                "direction": direction, "seeds": seed_list, "trials": trials, "parallel": parallel,
                "sampler": sampler, "pruner": pruner,
            }.items():  # fmt: skip
                study.set_user_attr(key, value)
        elif stored.user_attrs.get("trials") != trials:
            study.set_user_attr("trials", trials)  # the Study page shows the budget being run
        typer.echo(
            f"study {study.study_name}: {trials} trial(s), {parallel} at a time, group {study.study_name}"
        )
        opts = {"metric": metric, "seeds": seed_list, "direction": direction, "trials": trials}
        drive(engine, study, raw, params, {**opts, "parallel": parallel, "poll": poll})
        _show(study, as_json=False)

    study_app = typer.Typer(help="Tuning studies (bml tune).", no_args_is_help=True)
    app.add_typer(study_app, name="study")

    @study_app.command("show")
    def show(
        name: str = typer.Argument(..., help="study name"), as_json: bool = typer.Option(False, "--json")
    ) -> None:
        """A study's trials, states, values and best trial."""
        import optuna

        from bml_cli.store_cmd import _engine
        from db.studies import optuna_storage

        try:
            study = optuna.load_study(study_name=name, storage=optuna_storage(_engine()))
        except KeyError:
            raise fail(f"error: no study named {name!r}") from None
        _show(study, as_json)


def _show(study: Any, as_json: bool) -> None:
    rows = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "run_ids": t.user_attrs.get("run_ids", []),
            "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
        }
        for t in study.get_trials(deepcopy=False)
    ]
    done = [r for r in rows if r["value"] is not None]
    best = None
    if done:
        best = (max if study.direction.name == "MAXIMIZE" else min)(done, key=lambda r: r["value"])
    if as_json:
        typer.echo(json.dumps({"name": study.study_name, "trials": rows, "best": best}, indent=2))
        return
    for r in rows:
        typer.echo(f"trial {r['number']:>3} {r['state']:<9} {r['value']} {r['params']} runs {r['run_ids']}")
    if best is not None:
        typer.echo(f"best: trial {best['number']} value {best['value']} {best['params']}")


__all__ = ["EXIT_INVALID", "drive", "register"]
