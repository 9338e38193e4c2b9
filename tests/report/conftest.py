"""Fixtures of the report tests: a migrated SQLite store in the test's own BML_HOME (the
CLI opens the same one), or the worker suite's embedded broker and `bml worker` processes
for `bml reproduce`. Runs are added with `tests.helpers.report_runs.add_run`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db
from tests.helpers.cluster import Cluster, migrated_home


@pytest.fixture
def engine(_isolated_home: Path) -> Iterator[Engine]:
    eng = db.make_engine()
    db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def embedded_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A migrated store and the embedded broker in a temporary BML_HOME (as tests/worker)."""
    c = migrated_home(tmp_path, {"BML_BROKER_URL": ""})
    c.apply(monkeypatch)
    yield c
    c.stop_all()
