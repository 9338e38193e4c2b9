"""Fixtures of the dashboard tests: a migrated SQLite store in the test's own BML_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db


@pytest.fixture
def engine(_isolated_home: Path) -> Iterator[Engine]:
    """The store the app will open (SQLite under this test's BML_HOME), migrated."""
    eng = db.make_engine()
    db.upgrade(eng)
    yield eng
    eng.dispose()
