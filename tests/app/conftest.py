"""Fixtures of the dashboard tests: a migrated SQLite store in the test's own BML_HOME, and
Debian's Chromium for the browser tests (one per test module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import db
from tests.helpers.browser import launch_browser


@pytest.fixture
def engine(_isolated_home: Path) -> Iterator[Engine]:
    """The store the app will open (SQLite under this test's BML_HOME), migrated."""
    eng = db.make_engine()
    db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_browser(pw)
        yield b
        b.close()
