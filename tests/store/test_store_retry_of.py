"""`runs.retry_of` (issue 22, migration 0005_retry_of): upgrading a store made at 0004 fills
it where an old retry left a marker (the audit event `retry` "as run M", or the name suffix
"(retry of #N)") and the two runs have the same config apart from name and tags; every
other run keeps NULL, an identical relaunch included. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import db
from bml_core.compare import group_runs


def _old_store(url: str) -> dict[str, int]:
    """A store at 0004 as the previous code left it: retries named and audited, no retry_of."""
    engine = db.make_engine(url)
    assert db.upgrade(engine, "0004_ids") == "0004_ids"
    cfg = {"name": "probe", "group": "g", "seed": 3}
    ids = {"original": db.create_run(engine, cfg)}
    # retried from the Runs page (audited, named by retry_name)
    ids["audited"] = db.create_run(engine, cfg, name=f"probe (retry of #{ids['original']})")
    # retried before the audit trail: only the name says it
    ids["named"] = db.create_run(engine, cfg, name=f"probe (retry of #{ids['audited']})")
    # the same config and seed launched again: a relaunch, not a retry
    ids["relaunch"] = db.create_run(engine, cfg)
    # named like a retry but another seed: the marker is not believed
    ids["renamed"] = db.create_run(engine, {**cfg, "seed": 4}, name=f"probe (retry of #{ids['original']})")
    # a marker naming a newer run (a name typed by hand): not believed either
    ids["forward"] = db.create_run(engine, cfg, name="probe (retry of #99)")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (time, actor, action, run_id, detail)"
                " VALUES ('2026-11-30 10:00:00', 'ada', 'retry', :orig, :detail)"
            ),
            {"orig": ids["original"], "detail": f"as run {ids['audited']}"},
        )
    engine.dispose()
    return ids


def _check_upgraded(url: str, ids: dict[str, int]) -> None:
    engine = db.make_engine(url)
    assert db.upgrade(engine) == db.head_revision() == "0005_retry_of"
    db.check_schema(engine)
    got = {label: db.get_run(engine, rid).retry_of for label, rid in ids.items()}
    assert got == {
        "original": None,
        "audited": ids["original"],
        "named": ids["audited"],
        "relaunch": None,
        "renamed": None,
        "forward": None,
    }
    # Compare pools by it: of the chain original -> audited -> named only the newest counts;
    # the relaunch counts on its own (the runs are given a test accuracy for the purpose)
    for rid in ids.values():
        db.claim_run(engine, rid, "w")
        db.finish_run(engine, rid, "succeeded", summary={"test": {"acc": 0.5}})
    runs, missing = db.get_runs(engine, [ids["original"], ids["audited"], ids["named"], ids["relaunch"]])
    assert missing == []
    grouping = group_runs(runs)
    assert grouping.groups[0].run_ids == [ids["named"], ids["relaunch"]]
    engine.dispose()


def test_upgrade_fills_retry_of_where_a_marker_says_so_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _check_upgraded(url, _old_store(url))


@pytest.mark.postgres
def test_upgrade_fills_retry_of_where_a_marker_says_so_postgres(pg_databases: Any) -> None:
    url = pg_databases.url(pg_databases.create("retryof"))
    _check_upgraded(url, _old_store(url))
