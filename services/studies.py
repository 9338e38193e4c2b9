"""Starting a tuning study from the dashboard (issue 23, Tune on /launch). The driver of a
study is `bml tune` (its driver in services.tuning): it holds Optuna's sampler and pruner and polls the
trials' runs for as long as the study lasts, so it must not live in the Streamlit process
(a script rerun, a closed tab or a restarted app would end it). `start_study` checks the
request as `bml tune` does (every error named by its field, nothing stored), writes the
config under `$BML_HOME/studies/NAME.yaml` and starts `bml tune ... --name NAME` as a
detached process of its own session (its output in `NAME.log` beside it) on the same store;
the study's trials are ordinary runs on the workers. A driver that dies is continued with
`bml tune --resume NAME`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from bml_core.config import ConfigError
from bml_core.tune import check_metric, normalized, parse_space, space_signature, trial_config
from db.engine import bml_home

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("asha", "median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class StudyRequest:
    config: Mapping[str, Any]
    space: Sequence[str]  # `PATH=float(lo,hi[,log])|int(lo,hi)|cat(a,...)` as for --space
    trials: int = 20
    parallel: int = 1
    metric: str = "val/acc"
    direction: str = "maximize"
    sampler: str = "tpe"
    pruner: str = "asha"
    seeds: Sequence[int] = ()
    name: str = ""


@dataclass(frozen=True)
class StudyStart:
    name: str
    pid: int
    log: Path
    command: list[str]


def study_exists(engine: Engine, name: str) -> list[Any] | None:
    """The stored space of the study `name`, or None when there is no such study."""
    import optuna

    from db.studies import optuna_storage

    try:
        return list(
            optuna.load_study(study_name=name, storage=optuna_storage(engine)).user_attrs.get("space", [])
        )
    except KeyError:
        return None


def check_request(req: StudyRequest, engine: Engine) -> str:
    """The study's name when `req` can start; else ConfigError naming each bad field
    (`--space ...`, `--metric`, `--trials`, `--name`, ...)."""
    from services import actions as client

    errors: list[tuple[str, str]] = []
    if req.trials < 1:
        errors.append(("--trials", f"{req.trials}: give at least 1 trial"))
    if req.parallel < 1:
        errors.append(("--parallel", f"{req.parallel}: give at least 1"))
    if req.direction not in DIRECTIONS:
        errors.append(("--direction", f"{req.direction!r}: maximize or minimize"))
    if req.sampler not in SAMPLERS:
        errors.append(("--sampler", f"{req.sampler!r}: one of {', '.join(SAMPLERS)}"))
    if req.pruner not in PRUNERS:
        errors.append(("--pruner", f"{req.pruner!r}: one of {', '.join(PRUNERS)}"))
    name = req.name.strip() or f"study-{int(time.time())}"
    if not NAME.match(name):
        errors.append(
            ("--name", f"{name!r}: letters, digits, '_', '.', '-' (1 to 100, not starting with - . _)")
        )
    raw = normalized(req.config)
    try:
        params = parse_space(raw, req.space)
        low = {p.key: (p.choices[0] if p.kind == "cat" else p.low) for p in params}
        client.prepare(trial_config(raw, low), list(req.seeds) or None)
    except ConfigError as exc:
        errors += exc.errors
        params = []
    try:
        check_metric(raw, req.metric)
    except ConfigError as exc:
        errors += exc.errors
    if params and NAME.match(name):
        stored = study_exists(engine, name)
        if stored is not None and stored != space_signature(params):
            errors.append(
                ("--name", f"{name}: the study exists with another search space; give another name")
            )
    if errors:
        raise ConfigError(errors)
    return name


def tune_command(req: StudyRequest, config_path: Path, name: str) -> list[str]:
    cmd = [sys.executable, "-m", "bml_cli.main", "tune", str(config_path)]
    for text in req.space:
        cmd += ["--space", text]
    cmd += ["--trials", str(req.trials), "--parallel", str(req.parallel), "--metric", req.metric]
    cmd += ["--direction", req.direction, "--sampler", req.sampler, "--pruner", req.pruner, "--name", name]
    if req.seeds:
        cmd += ["--seeds", ",".join(map(str, req.seeds))]
    return cmd


def start_study(req: StudyRequest, engine: Engine, actor_name: str | None = None) -> StudyStart:
    """Check `req`, then start its driver (`bml tune`) detached on the same store, acting as
    `actor_name` (BML_USER) when given. ConfigError: nothing was written or started."""
    name = check_request(req, engine)
    folder = bml_home() / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(dict(req.config), sort_keys=False))
    log = folder / f"{name}.log"
    env = dict(os.environ)
    env["BML_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    env["PYTHONUNBUFFERED"] = "1"
    from db.accounts import local_admin

    env.pop("BML_USER", None)
    if actor_name and actor_name != local_admin().name:  # a stored account (the login is on)
        env["BML_USER"] = actor_name
    cmd = tune_command(req, config_path, name)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    threading.Thread(target=proc.wait, name=f"reap-{name}", daemon=True).start()  # no zombie left
    return StudyStart(name=name, pid=proc.pid, log=log, command=cmd)
