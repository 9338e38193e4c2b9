"""Optuna's tables in the product's database (issue 23, `bml tune`): created with the store
by `db.upgrade` (`bml db upgrade`) and opened through `optuna_storage`.

Optuna's own migrations keep their revision in a table named `alembic_version`, the same name
the store's migrations use, so the store does not let Optuna stamp or check it: the tables are
made from Optuna's models (`create_all`, idempotent; optuna is pinned to 5.0.x, whose schema
is the one made here) and the storage is opened with Optuna's own check and creation off."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine


def optuna_table_names() -> frozenset[str]:
    from optuna.storages._rdb import models

    return frozenset(models.BaseModel.metadata.tables)


def create_optuna_tables(conn: Connection) -> None:
    """Create Optuna's tables (and its version row) on this connection when they are missing."""
    from optuna import version
    from optuna.storages._rdb import models

    models.BaseModel.metadata.create_all(bind=conn)
    table = models.VersionInfoModel.__table__
    if conn.execute(table.select().limit(1)).first() is None:
        conn.execute(
            table.insert().values(
                version_info_id=1, schema_version=models.SCHEMA_VERSION, library_version=version.__version__
            )
        )


def optuna_storage(engine: Engine) -> Any:
    """An `optuna.storages.RDBStorage` on the store's database (its URL, password included)."""
    import optuna

    url = engine.url.render_as_string(hide_password=False)
    kwargs: dict[str, Any] = {}
    if engine.dialect.name == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    return optuna.storages.RDBStorage(
        url, engine_kwargs=kwargs, skip_table_creation=True, skip_compatibility_check=True
    )
