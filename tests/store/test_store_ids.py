"""Run ids never move (issue 14): deleting the newest run does not give its id to the next
one, on SQLite (AUTOINCREMENT, migration 0004_ids) and PostgreSQL (a sequence); `bml
delete`; a retry is named "NAME (retry of #N)"; and `bml submit` refuses bad dataset
parameters naming `dataset.params.<x>` with nothing stored."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

import db
from bml_cli.main import app

runner = CliRunner()


def test_a_deleted_newest_id_is_never_given_again(engine: Engine, sent: list[int]) -> None:
    from services import actions as client

    first, newest = client.submit({"name": "a"}, [0, 1], engine=engine)
    client.delete(newest, engine=engine)
    (again,) = client.submit({"name": "b"}, engine=engine)
    assert again > newest > first
    client.delete(again, engine=engine)
    client.delete(first, engine=engine)
    (last,) = client.submit({"name": "c"}, engine=engine)
    assert last > again
    assert [r.id for r in db.list_runs(engine).runs] == [last]


def test_bml_delete_asks_unless_yes(engine: Engine) -> None:
    a = db.create_run(engine, {"name": "keep-me"})
    b = db.create_run(engine, {"name": "drop-me"})
    result = runner.invoke(app, ["delete", str(a)], input="n\n")
    assert result.exit_code == 2 and "kept" in result.stderr
    result = runner.invoke(app, ["delete", str(b), "--yes"])
    assert result.exit_code == 0 and f"run {b}: deleted" in result.stdout
    assert [r.id for r in db.list_runs(engine).runs] == [a]
    result = runner.invoke(app, ["delete", str(b), "--yes"])
    assert result.exit_code == 2 and f"no run with id {b}" in result.stderr


def test_retry_is_named_after_the_run_it_retries(engine: Engine, sent: list[int]) -> None:
    from app.views.runs import data as runs_data
    from services import actions as client

    (rid,) = client.submit({"name": "lr-probe"}, engine=engine)
    client.cancel(rid, engine=engine)
    result = runs_data.run_action("retry", rid, engine)
    assert result.ok and result.new_run_id is not None
    new = db.get_run(engine, result.new_run_id)
    assert new.name == f"lr-probe (retry of #{rid})" and new.status == "queued"
    assert f'"lr-probe (retry of #{rid})" (queued)' in result.message
    client.cancel(new.id, engine=engine)
    again = db.get_run(engine, client.retry(new.id, engine=engine))
    assert again.name == f"lr-probe (retry of #{new.id})"  # one suffix, naming the run retried
    message = runs_data.run_action("cancel", again.id, engine).message
    assert message == f"Run {again.id} cancelled."


def test_bml_retry_records_the_run_it_clones(engine: Engine, sent: list[int]) -> None:
    """Issue 22: `bml retry N` queues a clone with runs.retry_of = N; a retry of that retry
    names its own original; a relaunch of the same config (bml submit) is no retry."""
    from services import actions as client

    (rid,) = client.submit({"name": "probe", "seed": 4}, engine=engine)
    client.cancel(rid, engine=engine)
    result = runner.invoke(app, ["retry", str(rid)])
    assert result.exit_code == 0, result.stderr
    clone = int(result.stdout.strip())
    run = db.get_run(engine, clone)
    assert (run.retry_of, run.seed, run.status, run.name) == (rid, 4, "queued", f"probe (retry of #{rid})")
    assert sent == [rid, clone]
    again = int(runner.invoke(app, ["retry", str(clone)]).stdout.strip())
    assert db.get_run(engine, again).retry_of == clone
    (relaunch,) = client.submit({"name": "probe", "seed": 4}, engine=engine)
    assert db.get_run(engine, relaunch).retry_of is None
    listed = {r.id: r.retry_of for r in db.list_runs(engine, limit=None).runs}
    assert listed == {rid: None, clone: rid, again: clone, relaunch: None}
    # the original deleted: its retry stays, no longer linked
    client.delete(rid, engine=engine)
    assert db.get_run(engine, clone).retry_of is None and db.get_run(engine, again).retry_of == clone
    bad = runner.invoke(app, ["retry", "999999"])
    assert bad.exit_code == 2 and "no run with id 999999" in bad.stderr


def test_submit_refuses_bad_dataset_params_and_stores_nothing(engine: Engine, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: bad\ndataset: {name: mfeat, params: {views: [pix, nonsense]}}\n")
    result = runner.invoke(app, ["submit", str(cfg)])
    assert result.exit_code == 2
    assert "dataset.params.views" in result.stderr and "unknown view(s) ['nonsense']" in result.stderr
    cfg.write_text("name: bad\ndataset: {name: synthetic, params: {num_samples: lots}}\n")
    result = runner.invoke(app, ["submit", str(cfg)])
    assert result.exit_code == 2 and "dataset.params.num_samples" in result.stderr
    assert db.list_runs(engine).total == 0


def test_sqlite_upgrade_to_autoincrement_keeps_runs_and_their_data(tmp_path: Path) -> None:
    """0002_accounts -> 0004_ids rebuilds `runs` on SQLite: ids, rows, series and events stay."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    db.upgrade(engine, "0002_accounts")
    ids = [db.create_run(engine, {"name": f"r{i}"}) for i in range(3)]
    db.write_points(engine, ids[0], {"train/loss": [(1, 0.5), (2, 0.25)]})
    db.add_event(engine, ids[0], "info", "kept")
    assert db.upgrade(engine, "0004_ids") == "0004_ids"
    db.upgrade(engine)  # the reads below are the current code's (0005_retry_of adds a column)
    assert [r.id for r in db.list_runs(engine, limit=None).runs] == ids[::-1]
    assert db.series_since(engine, ids[0], keys=["train/loss"])["train/loss"].values == [0.5, 0.25]
    assert [e.message for e in db.run_events(engine, ids[0])] == ["kept"]
    db.delete_run(engine, ids[-1])
    assert db.create_run(engine, {"name": "new"}) == ids[-1] + 1
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # checks are on again
    engine.dispose()
