"""Fixtures of the dashboard tests: a migrated SQLite store in the test's own BML_HOME, and
Debian's Chromium for the browser tests (one per test module, a fresh page per test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.browser import VIEWPORT, launch_browser
from tests.helpers.fixtures import engine, sent  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_browser(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page per test (the module's Chromium)."""
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    yield pg
    context.close()
