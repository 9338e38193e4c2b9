"""Fixtures more than one suite uses, imported into its conftest (or test module): `engine`,
the migrated SQLite store in the test's own BML_HOME (the one the app and the CLI open),
`embedded_cluster`, that store with the embedded broker for `bml worker` processes, and
`sent`, the run ids the app or a service enqueued (recorded instead of sent to a broker), and
`store` (`process_store`): a migrated SQLite store for run processes started by the test
(BML_DATABASE_URL, BML_RUNS_DIR and a 0.2 s heartbeat in the environment)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db
from tests.helpers.cluster import Cluster, migrated_home


@pytest.fixture
def engine(_isolated_home: Path) -> Iterator[Engine]:
    """The store the app and the CLI will open (SQLite under this test's BML_HOME), migrated."""
    eng = db.make_engine()
    db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def embedded_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A migrated store and the embedded broker in a temporary BML_HOME."""
    c = migrated_home(tmp_path, {"BML_BROKER_URL": ""})
    c.apply(monkeypatch)
    yield c
    c.stop_all()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run ids services.actions.enqueue was given (recorded, not sent)."""
    from services import actions as client

    calls: list[int] = []
    monkeypatch.setattr(client, "enqueue", lambda run_id: calls.append(int(run_id)))
    return calls


@pytest.fixture(name="store")
def process_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A migrated SQLite store that run processes and supervisors started by the test find
    through the environment."""
    url = f"sqlite:///{tmp_path / 'bml.db'}"
    monkeypatch.setenv("BML_DATABASE_URL", url)
    monkeypatch.setenv("BML_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("BML_HEARTBEAT_INTERVAL_S", "0.2")
    eng = db.make_engine(url)
    db.upgrade(eng)
    yield eng
    eng.dispose()
