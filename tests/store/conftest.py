"""Fixtures of the store suite: every test that takes `engine` runs on SQLite and on the
machine's real PostgreSQL (127.0.0.1:5432, a fresh database per test session, dropped at
the end). Tables are emptied before each test; the schema is migrated once per backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

import db
from tests.helpers.fixtures import sent  # noqa: F401 (a fixture)
from tests.helpers.postgres import PostgresDatabases, pg_url
from tests.tcp_proxy import TcpProxy

TABLES = ("points", "rollups", "series", "events", "run_tags", "runs", "sweeps", "users", "audit_events")


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    dbs = PostgresDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database of each backend, shared by the session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'bml.db'}"
    else:
        url = pg_url(request.getfixturevalue("pg_databases").create("store"))
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    yield engines
    for e in engines.values():
        e.dispose()


@pytest.fixture
def engine(store_url: str, _engines: dict[str, Engine], monkeypatch: pytest.MonkeyPatch) -> Engine:
    """An empty, migrated store (BML_DATABASE_URL points at it too, for the CLI)."""
    if store_url not in _engines:
        _engines[store_url] = db.make_engine(store_url)
    e = _engines[store_url]
    with e.begin() as conn:
        if e.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
    monkeypatch.setenv("BML_DATABASE_URL", store_url)
    return e


@pytest.fixture
def backend(engine: Engine) -> str:
    return engine.dialect.name


@pytest.fixture
def pg_proxy(pg_databases: PostgresDatabases) -> Iterator[tuple[TcpProxy, str]]:
    """(proxy, database name): a migrated PostgreSQL database reachable through a proxy."""
    name = pg_databases.create("proxy")
    direct = db.make_engine(pg_url(name))
    db.upgrade(direct)
    direct.dispose()
    proxy = TcpProxy()
    proxy.start()
    yield proxy, name
    proxy.stop()
