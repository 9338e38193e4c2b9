"""Retry from the Runs page in a real browser (issue 22): Chromium picks a finished run on
/runs of `bml dashboard` (its own BML_HOME, a free port), presses "Retry (clone)"; the store
records the clone's `retry_of`, and the page says "retry of #N" under the run picker when
the clone is picked. A relaunch of the same config says nothing of the kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import db
from tests.helpers.browser import choose, open_page, serve_dashboard
from tests.helpers.stored_runs import add_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retry-home")


@pytest.fixture(scope="module")
def dashboard(home: Path) -> Iterator[str]:
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    db.upgrade(engine)
    add_run(engine, "probe", "g", seed=2, steps=30)
    add_run(engine, "probe", "g", seed=2, steps=30)  # launched again by hand: no retry
    engine.dispose()
    with serve_dashboard(home) as url:
        yield url


def test_retry_on_the_runs_page_records_and_shows_retry_of(dashboard: str, home: Path, page: Any) -> None:
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    try:
        original, relaunch = sorted(r.id for r in db.list_runs(engine, limit=None).runs)
        open_page(page, f"{dashboard}/runs")
        choose(page, "runs_pick", f"#{relaunch} probe (succeeded)")
        assert page.locator(".st-key-runs-lineage").count() == 0  # a relaunch is no retry
        choose(page, "runs_pick", f"#{original} probe (succeeded)")
        page.locator(".st-key-runs_retry button").click()
        page.get_by_text(f"Run {original} cloned as run").first.wait_for(timeout=30_000)
        clone = max(r.id for r in db.list_runs(engine, limit=None).runs)
        run = db.get_run(engine, clone)
        assert run.retry_of == original and run.seed == 2 and run.status == "queued"
        assert db.get_run(engine, relaunch).retry_of is None

        open_page(page, f"{dashboard}/runs")
        choose(page, "runs_pick", f"#{clone} {run.name} (queued)")
        lineage = page.locator(".st-key-runs-lineage")
        lineage.wait_for(timeout=30_000)
        assert lineage.inner_text().strip() == f"Run #{clone}: retry of #{original}."
    finally:
        engine.dispose()
