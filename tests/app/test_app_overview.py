"""The app's entry: it refuses an un-migrated store with the command that fixes it, and
the overview counts runs by status and links the latest runs and the groups."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

import db
from tests.helpers.apptest import errors_of, open_page
from tests.helpers.stored_runs import add_run


def test_an_unmigrated_store_is_refused_with_the_fix(_isolated_home: Path) -> None:
    at = open_page()
    assert any("not migrated" in e for e in errors_of(at))
    assert any("bml db upgrade" in m.value for m in at.markdown)
    assert not at.get("plotly_chart") and not at.metric


def test_overview_counts_runs_by_status_and_links_groups(engine: Engine) -> None:
    add_run(engine, "a", "g1", steps=10)
    add_run(engine, "b", "g1", steps=10, status="failed")
    add_run(engine, "c", "g2", status="queued")
    at = open_page()
    assert not at.exception
    counts = {m.label: m.value for m in at.metric}
    assert counts == {
        s: {"succeeded": "1", "failed": "1", "queued": "1"}.get(s, "0") for s in db.RUN_STATUSES
    }
    links = [el.proto for el in at.get("page_link")]
    labels = [p.label for p in links]
    assert "g1 (2 runs)" in labels and "g2 (1 run)" in labels
