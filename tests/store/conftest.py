"""Fixtures of the store suite: every test that takes `engine` runs on SQLite and on the
machine's real PostgreSQL (127.0.0.1:5432, a fresh database per test session, dropped at
the end). Tables are emptied before each test; the schema is migrated once per backend."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import db
from tests.tcp_proxy import TcpProxy

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
TABLES = ("points", "rollups", "series", "events", "run_tags", "runs", "sweeps", "users", "audit_events")


def pg_url(database: str, port: int = PG_PORT) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{port}/{database}"


def _pg_ready() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError:
        return False
    if shutil.which("pg_isready"):
        return subprocess.run(["pg_isready", "-h", PG_HOST, "-p", str(PG_PORT), "-q"]).returncode == 0
    return True


def ensure_postgres() -> None:
    """Start the local cluster when it is not running (as scripts/ensure_services.sh does)."""
    if _pg_ready():
        return
    if Path("/etc/postgresql").is_dir() and shutil.which("pg_ctlcluster"):
        for version in sorted(os.listdir("/etc/postgresql")):
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                capture_output=True,
                timeout=60,
            )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _pg_ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"PostgreSQL is not running at {PG_HOST}:{PG_PORT} and could not be started")


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql.encode())


class PostgresDatabases:
    """Creates databases with unique names for this session and drops them at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self, label: str = "t") -> str:
        ensure_postgres()
        name = f"bml_test_{label}_{os.getpid()}_{secrets.token_hex(4)}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return name

    @staticmethod
    def url(name: str, port: int = PG_PORT) -> str:
        return pg_url(name, port)

    def drop_all(self) -> None:
        for name in self.names:
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
