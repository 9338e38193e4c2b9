"""Fixtures of the report tests: a migrated SQLite store in the test's own BML_HOME (the
CLI opens the same one). Runs are added with `report_runs.add_run`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db


@pytest.fixture
def engine(_isolated_home: Path) -> Iterator[Engine]:
    eng = db.make_engine()
    db.upgrade(eng)
    yield eng
    eng.dispose()
