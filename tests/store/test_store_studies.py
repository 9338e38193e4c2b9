"""Optuna's tables live in the store's database (issue 23): `db.upgrade` makes them, the store's
own revision stays in `alembic_version`, and a study written through `optuna_storage` is read
back by a second storage object (what `bml tune --resume` and the Study page do)."""

from __future__ import annotations

import secrets

import optuna
from sqlalchemy import Engine, inspect

import db
from db.studies import optuna_storage, optuna_table_names


def test_upgrade_makes_optuna_tables_and_keeps_the_store_revision(engine: Engine) -> None:
    assert {"studies", "trials", "trial_intermediate_values"} <= optuna_table_names()
    assert optuna_table_names() <= set(inspect(engine).get_table_names())
    assert db.upgrade(engine) == db.head_revision()  # a second upgrade changes nothing
    db.check_schema(engine)


def test_a_study_round_trips_through_the_store(engine: Engine) -> None:
    name = f"s-{secrets.token_hex(4)}"
    study = optuna.create_study(study_name=name, storage=optuna_storage(engine), direction="maximize")
    trial = study.ask()
    trial.report(0.25, step=1)
    trial.report(0.5, step=2)
    study.tell(trial, 0.5)
    again = optuna.load_study(study_name=name, storage=optuna_storage(engine))
    (t,) = again.trials
    assert t.value == 0.5 and t.intermediate_values == {1: 0.25, 2: 0.5}
    assert t.state == optuna.trial.TrialState.COMPLETE


CONFIG = {"name": "trial-0", "group": "study-a", "strategies": [{"name": "ogm_ge", "alpha": 0.5}]}


def test_a_running_trial_is_pruned_through_the_cancel_path(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG)
    assert db.claim_run(engine, run_id, "w")
    assert db.request_prune(engine, run_id, "trial 0 below the median at step 2") == "running"
    assert db.heartbeat(engine, run_id) is True  # its supervisor learns it should stop
    assert db.mark_pruned(engine, run_id) is False  # still running: not yet
    db.finish_run(engine, run_id, "cancelled")  # what the run process records when it stops
    assert db.mark_pruned(engine, run_id) is True
    run = db.get_run(engine, run_id)
    assert run.status == "pruned" and "pruned" in db.RUN_STATUSES and "pruned" in db.TERMINAL_STATUSES
    assert any("pruned: trial 0 below" in e.message for e in db.run_events(engine, run_id))
    assert db.list_runs(engine, status="pruned").total == 1


def test_a_queued_trial_is_pruned_at_once_and_a_finished_one_is_left(engine: Engine) -> None:
    queued = db.create_run(engine, CONFIG)
    assert db.request_prune(engine, queued, "over budget") == "pruned"
    assert db.get_run(engine, queued).status == "pruned"
    done = db.create_run(engine, CONFIG)
    assert db.claim_run(engine, done, "w")
    db.finish_run(engine, done, "succeeded")
    assert db.request_prune(engine, done, "late") == "succeeded"
    assert db.mark_pruned(engine, done) is False and db.get_run(engine, done).status == "succeeded"
