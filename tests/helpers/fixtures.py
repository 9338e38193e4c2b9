"""Fixtures more than one suite uses, imported into its conftest (or test module): `engine`,
the migrated SQLite store in the test's own BML_HOME (the one the app and the CLI open),
`embedded_cluster`, that store with the embedded broker for `bml worker` processes, and
`sent`, the run ids the app or a service enqueued (recorded instead of sent to a broker)."""

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
