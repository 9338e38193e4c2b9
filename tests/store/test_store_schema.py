"""Migrations and schema checks: an un-migrated database is refused with a message that
says to run `bml db upgrade`; the migrated schema matches the models on both backends."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import db
from db.models import Base
from db.studies import optuna_table_names


def test_database_url_defaults_to_sqlite_under_bml_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BML_DATABASE_URL", raising=False)
    monkeypatch.setenv("BML_HOME", str(tmp_path / "home"))
    assert db.database_url() == f"sqlite:///{tmp_path / 'home' / 'bml.db'}"
    monkeypatch.setenv("BML_DATABASE_URL", "postgresql://u@h:5432/x")
    assert db.database_url() == "postgresql+psycopg://u@h:5432/x"
    assert db.database_url("postgres://u@h/x") == "postgresql+psycopg://u@h/x"


def _assert_refused(engine: Engine) -> None:
    with pytest.raises(db.SchemaError) as exc:
        db.check_schema(engine)
    assert "bml db upgrade" in str(exc.value)
    assert "not migrated" in str(exc.value)


def test_check_schema_refuses_unmigrated_sqlite_then_accepts_after_upgrade(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    _assert_refused(engine)
    assert db.current_revision(engine) is None
    assert db.upgrade(engine) == db.head_revision()
    db.check_schema(engine)
    assert db.upgrade(engine) == db.head_revision()  # a second upgrade is a no-op


@pytest.mark.postgres
def test_check_schema_refuses_unmigrated_postgres_then_accepts_after_upgrade(
    pg_databases: Any,
) -> None:
    engine = db.make_engine(pg_databases.url(pg_databases.create("fresh")))
    try:
        _assert_refused(engine)
        db.upgrade(engine)
        db.check_schema(engine)
    finally:
        engine.dispose()


def test_check_schema_refuses_a_revision_it_does_not_know(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    try:
        with pytest.raises(db.SchemaError, match="newer BML Studio"):
            db.check_schema(engine)
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": db.head_revision()})
    db.check_schema(engine)


def test_check_schema_reports_an_unreachable_database() -> None:
    engine = db.make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    with pytest.raises(db.SchemaError, match="cannot open the store"):
        db.check_schema(engine)


def test_migrations_match_the_models(engine: Engine) -> None:
    optuna_tables = optuna_table_names()  # Optuna's tables (db.studies, made by db.upgrade)
    assert optuna_tables <= set(inspect(engine).get_table_names())

    def store_only(obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj.name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table not in optuna_tables

    opts = {"compare_type": True, "include_object": store_only}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    assert diff == []


def test_sqlite_settings_and_without_rowid(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    engine.dispose()
    raw = sqlite3.connect(path)
    ddl = dict(raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    raw.close()
    assert "WITHOUT ROWID" in ddl["points"]
    assert "WITHOUT ROWID" in ddl["rollups"]
    assert "PRIMARY KEY (series_id, step)" in ddl["points"]


def test_migrations_ship_inside_the_package() -> None:
    from db.engine import MIGRATIONS_DIR

    assert MIGRATIONS_DIR.parent == Path(db.__file__).parent
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert list((MIGRATIONS_DIR / "versions").glob("0001_*.py"))


def test_db_never_loads_torch_and_bml_core_never_loads_db() -> None:
    import subprocess
    import sys

    code = (
        "import sys, db, db.sink, db.queries, db.runs; assert 'torch' not in sys.modules, 'db imported torch'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    core = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bml_core.trainer, bml_core.sinks; print(sorted(m for m in sys.modules if m == 'db' or m.startswith('db.')))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert core.returncode == 0 and core.stdout.strip() == "[]", core.stdout + core.stderr
