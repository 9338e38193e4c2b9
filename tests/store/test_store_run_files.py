"""A run's files on disk (issue 15 item 3): its directory is keyed by id and creation time,
so a new run starts from scratch even if it got a deleted run's id (SQLite reused the
highest id before migration 0004_ids); deleting a run deletes its files. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db
from services import actions as client
from worker.run_process import _train
from worker.settings import run_dir

TINY = {
    "name": "files",
    "dataset": {"params": {"num_samples": 120}},
    "model": {"feature_dim": 8},
    "optim": {"scheduler": {"name": "none"}},
    "train": {"epochs": 1, "batch_size": 32, "threads": 1, "device": "cpu"},
}


def _run_to_the_end(engine: Engine) -> int:
    run_id = db.create_run(engine, TINY)
    assert db.claim_run(engine, run_id, "test-worker")
    assert _train(engine, run_id, threading.Event()) == 0
    assert db.get_run(engine, run_id).status == "succeeded"
    return run_id


def test_deleted_runs_files_go_and_a_new_run_starts_from_scratch(
    engine: Engine, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BML_RUNS_DIR", str(tmp_path / "runs"))
    first = _run_to_the_end(engine)
    first_dir = run_dir(first, db.get_run(engine, first).created_at)
    assert (first_dir / "last.pt").is_file() and (first_dir / "best.pt").is_file()

    client.delete(first, engine=engine)
    assert not first_dir.exists()
    with pytest.raises(db.RunNotFound):
        client.delete(first, engine=engine)

    second = _run_to_the_end(engine)
    # ids are never handed out again (issue 14, migration 0004_ids: AUTOINCREMENT on SQLite), and
    # the directory is keyed by creation time too, so a reused id could not find these files either
    assert second != first
    second_dir = run_dir(second, db.get_run(engine, second).created_at)
    assert second_dir != first_dir and (second_dir / "last.pt").is_file()
    messages = [e.message for e in db.run_events(engine, second)]
    assert not any("resumed" in m for m in messages), messages
    assert db.get_run(engine, second).summary["train"]["steps"] > 0  # it trained, from step 0


def test_delete_removes_the_directory_of_older_releases_too(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BML_RUNS_DIR", str(tmp_path / "runs"))
    run_id = db.create_run(engine, TINY)
    legacy = tmp_path / "runs" / f"run-{run_id}"
    legacy.mkdir(parents=True)
    (legacy / "last.pt").write_bytes(b"old")
    keep = tmp_path / "runs" / f"run-{run_id + 1}"
    keep.mkdir()
    client.delete(run_id, engine=engine)
    assert not legacy.exists() and keep.is_dir()
