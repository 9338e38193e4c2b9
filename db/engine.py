"""Connecting to the store and migrating it.

`make_engine()` opens `BML_DATABASE_URL`, or by default a SQLite file `$BML_HOME/bml.db`
(WAL, synchronous=NORMAL, busy_timeout); `upgrade()` applies the Alembic migrations shipped
in `db/migrations/` (`bml db upgrade`); `check_schema()` is what the app and the worker call
before they start, so that they refuse an un-migrated database with a clear message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from db.errors import SchemaError, StoreUnreachable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DATABASE_FILE = "bml.db"
busy_timeout_ms = 30_000
postgres_connect_timeout_s = 5


def bml_home() -> Path:
    return Path(os.environ.get("BML_HOME", ".bml")).resolve()


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else `BML_DATABASE_URL`, else SQLite under BML_HOME.
    `postgresql://` and `postgres://` URLs are sent to psycopg 3."""
    url = url or os.environ.get("BML_DATABASE_URL") or ""
    if not url:
        return f"sqlite:///{bml_home() / DATABASE_FILE}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin); pysqlite's own handling is off.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Write transactions take the write lock up front (BEGIN IMMEDIATE): a deferred
    # transaction that reads first and writes later fails at once with "database is
    # locked" when another writer committed meanwhile, whatever the busy timeout.
    if conn.get_execution_options().get("bml_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def _parsed_url(url: str | None = None) -> Any:
    """The store's URL, parsed; SchemaError naming the supported databases otherwise."""
    raw = database_url(url)
    hint = "use sqlite:///PATH (the default, under BML_HOME) or postgresql://USER@HOST/DB"
    try:
        full = make_url(raw)
    except Exception:  # noqa: BLE001 - sqlalchemy's ArgumentError: say what is accepted
        raise SchemaError(f"BML_DATABASE_URL is not a database URL; {hint}") from None
    if full.get_backend_name() not in SUPPORTED_BACKENDS:
        raise SchemaError(
            f"BML_DATABASE_URL: {full.get_backend_name()!r} databases are not supported; {hint}"
        )
    return full


def missing_sqlite_file(url: str | None = None) -> Path | None:
    """The SQLite file the store would use when it does not exist yet (read-only commands
    then stop before opening it, which would create it); None for PostgreSQL or an existing file."""
    full = _parsed_url(url)
    if full.get_backend_name() != "sqlite" or not full.database or full.database == ":memory:":
        return None
    path = Path(full.database)
    return None if path.exists() else path


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the store (see `database_url`). Creates BML_HOME for the SQLite file."""
    full = _parsed_url(url)
    if full.get_backend_name() == "sqlite":
        if full.database and full.database != ":memory:":
            Path(full.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        engine = create_engine(full, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if full.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("connect_args", {"connect_timeout": postgres_connect_timeout_s})
    return create_engine(full, **kwargs)


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """`with write_tx(engine) as conn:` one transaction meant to write (BEGIN IMMEDIATE on
    SQLite); commits at the end of the block, rolls back on an exception."""
    with engine.connect() as conn:
        conn.execution_options(bml_write=True)
        with conn.begin():
            yield conn


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def head_revision() -> str:
    """The schema revision this code needs."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if head is None:
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine | None = None, revision: str = "head") -> str:
    """Apply the migrations up to `revision`; returns the database's revision after."""
    from alembic import command

    engine = engine or make_engine()
    cfg = alembic_config(engine)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A table rebuild (0004_ids: copy, drop, rename) must not trip the foreign keys of
            # the tables that reference it. The pragma only works outside a transaction, so
            # it goes to the driver's connection before SQLAlchemy begins one.
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            from db.studies import create_optuna_tables

            create_optuna_tables(conn)  # `bml tune`'s studies (Optuna's tables, see db.studies)
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise SchemaError(f"the migration left rows without their run: {broken[:5]}")
            conn.commit()
        finally:
            if sqlite:
                conn.rollback()
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    rev = current_revision(engine)
    return rev or ""


def describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def check_schema(engine: Engine) -> None:
    """Raise SchemaError unless the database is at the revision this code needs. The app,
    the worker and the CLI call this before they start."""
    head = head_revision()
    try:
        current = current_revision(engine)
    except Exception as exc:
        raise StoreUnreachable(f"cannot open the store at {describe(engine)}: {exc}") from exc
    if current == head:
        return
    if current is None:
        raise SchemaError(
            f"the store at {describe(engine)} is not migrated (it has no schema; this code needs "
            f"revision {head}). Run `bml db upgrade` first."
        )
    from alembic.script import ScriptDirectory

    known = {s.revision for s in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"the store at {describe(engine)} is at revision {current}, which this code does not "
            f"know (it needs {head}): it was migrated by a newer BML Studio; upgrade the code."
        )
    raise SchemaError(
        f"the store at {describe(engine)} is at revision {current}; this code needs {head}. "
        "Run `bml db upgrade` first."
    )
