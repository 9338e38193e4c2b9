"""`bml db upgrade`, `bml runs`, `bml export` and `bml train --db` through the real CLI
(typer's runner in-process, and one subprocess), on both backends."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

import db
from bml_cli.main import app

runner = CliRunner()


def _bml(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_runs_lists_as_text_and_json(engine: Engine) -> None:
    a = db.create_run(engine, {"name": "first", "group": "ga"})
    b = db.create_run(engine, {"name": "second", "group": "gb"})
    db.claim_run(engine, b, "w")
    db.heartbeat(engine, b, progress=0.5)
    db.finish_run(engine, a, "succeeded", summary={"best_epoch": 1, "test": {"acc": float("nan")}})
    code, out, _ = _bml("runs", "--json")
    assert code == 0
    runs = json.loads(out)
    assert [r["id"] for r in runs] == [b, a]
    for r in runs:
        assert {"id", "name", "group", "status", "attempt", "progress", "summary"} <= set(r)
    assert runs[0]["summary"] is None and runs[0]["progress"] == 0.5 and runs[0]["status"] == "running"
    assert runs[1]["summary"] == {"best_epoch": 1, "test": {"acc": "nan"}}
    code, out, _ = _bml("runs", "--status", "succeeded", "--json")
    assert [r["id"] for r in json.loads(out)] == [a]
    code, out, _ = _bml("runs", "--group", "gb")
    assert code == 0 and "second" in out and "first" not in out
    code, out, _ = _bml("runs", "--limit", "1")
    assert "(1 of 2" in out
    code, _, err = _bml("runs", "--status", "sleeping")
    assert code == 2 and "unknown status" in err


def test_export_csv_json_parquet_keep_nan_and_inf(engine: Engine, tmp_path: Path) -> None:
    run_id = db.create_run(engine, {"name": "exp"})
    db.write_points(engine, run_id, {"a": [(1, 0.5), (2, float("nan"))], "b": [(1, float("inf")), (5, -1.0)]})

    code, out, _ = _bml("export", str(run_id), "--format", "csv", "-o", "-")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [
        ["key", "step", "value"],
        ["a", "1", "0.5"],
        ["a", "2", "nan"],
        ["b", "1", "inf"],
        ["b", "5", "-1.0"],
    ]

    target = tmp_path / "e.json"
    code, out, _ = _bml("export", str(run_id), "--format", "json", "-o", str(target))
    assert code == 0 and "wrote 4 points" in out
    doc = json.loads(target.read_text())
    assert doc["run"]["id"] == run_id
    assert doc["series"]["a"] == {"steps": [1, 2], "values": [0.5, "nan"]}
    assert doc["series"]["b"]["values"] == ["inf", -1.0]

    target = tmp_path / "e.parquet"
    code, _, _ = _bml("export", str(run_id), "--format", "parquet", "-o", str(target))
    table = pq.read_table(target).to_pydict()
    assert table["key"] == ["a", "a", "b", "b"] and table["step"] == [1, 2, 1, 5]
    assert math.isnan(table["value"][1]) and table["value"][2] == math.inf


def test_export_csv_escapes_keys_a_spreadsheet_would_run_as_formulas(engine: Engine) -> None:
    # an own-loop run may log any key: one starting with = + - @ gets a leading ' (issue 25);
    # the values stay numbers, -1.0 included
    run_id = db.create_run(engine, {"name": "inject"})
    db.write_points(engine, run_id, {"=HYPERLINK(1)": [(1, -1.0)], "@x": [(1, 2.0)], "ok": [(1, 3.0)]})
    code, out, _ = _bml("export", str(run_id), "--format", "csv", "-o", "-")
    assert code == 0
    rows = sorted(list(csv.reader(io.StringIO(out)))[1:])
    assert rows == [["'=HYPERLINK(1)", "1", "-1.0"], ["'@x", "1", "2.0"], ["ok", "1", "3.0"]]


def test_export_unknown_run_and_bad_format_exit_2(engine: Engine) -> None:
    code, _, err = _bml("export", "424242", "--format", "csv", "-o", "-")
    assert code == 2 and "no run with id 424242" in err
    code, _, err = _bml("export", "1", "--format", "xlsx")
    assert code == 2 and "unknown format" in err


def test_commands_refuse_an_unmigrated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BML_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    for args in (["runs"], ["export", "1"]):
        code, _, err = _bml(*args)
        assert code == 1 and "bml db upgrade" in err
    code, out, _ = _bml("db", "upgrade")
    assert code == 0 and db.head_revision() in out
    code, out, _ = _bml("runs", "--json")
    assert code == 0 and json.loads(out) == []


def test_db_upgrade_and_runs_as_a_subprocess(
    bml_exe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BML_DATABASE_URL", raising=False)
    env_home = tmp_path / "home"
    monkeypatch.setenv("BML_HOME", str(env_home))
    up = subprocess.run([bml_exe, "db", "upgrade"], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert (env_home / "bml.db").is_file()
    runs = subprocess.run([bml_exe, "runs", "--json"], capture_output=True, text=True, timeout=120)
    assert runs.returncode == 0 and json.loads(runs.stdout) == []


def test_train_with_db_streams_the_run(engine: Engine, tmp_path: Path) -> None:
    code, out, err = _bml(
        "train",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
        "--set",
        "dataset.params.num_samples=300",
        "--set",
        "train.epochs=1",
        "--set",
        "train.device=cpu",
        "--set",
        "train.threads=1",
        "--set",
        "name=cli-db",
        "--db",
    )
    assert code == 0, err
    run_id = int(next(line for line in out.splitlines() if line.startswith("store run id:")).split(":")[1])
    run = db.get_run(engine, run_id)
    assert run.status == "succeeded" and run.name == "cli-db" and run.attempt == 1
    assert run.summary is not None and run.summary["train"]["steps"] == run.total_steps == run.step
    loss = db.series_since(engine, run_id, keys=["train/loss"])["train/loss"]
    assert loss.steps == list(range(1, run.step + 1))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum(1 for line in lines if '"event":"step"' in line) == run.step
