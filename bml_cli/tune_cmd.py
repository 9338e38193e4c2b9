"""`bml tune` (issue 23): parses and checks the study's options, then runs the driver
(services.tuning: trials are ordinary runs on the workers). `bml study show S [--json]` reads
a study back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from bml_cli.common import EXIT_INVALID, fail, invalid_input_exits
from services.studies import PRUNERS, SAMPLERS
from services.tuning import drive, make_pruner, make_sampler


def _sampler(name: str, space: list[Any]) -> Any:
    try:
        return make_sampler(name, space)
    except ValueError as exc:
        raise fail(f"error: {exc}") from None


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
        poll: float = typer.Option(0.25, "--poll", help="seconds between polls of the trials' series"),
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
            pruner=make_pruner(pruner, evals),
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
