"""The store end of an own-loop run: which database (the `store` argument, else
BML_DATABASE_URL, else the SQLite file under BML_HOME that `bml up` serves), the run row
(db.own_runs) and the DbMetricSink that writes it. The `db` package is imported here only,
and lazily: `import bml_core` stays free of the store."""

from __future__ import annotations

import contextlib
import os
from typing import Any


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None


def open_store(store: Any) -> Any:
    """An Engine for `store` (an Engine, a URL or None). A fresh SQLite store is migrated
    (as `bml up` does); another un-migrated store is refused with the command that fixes it."""
    from sqlalchemy import Engine

    import db

    engine = store if isinstance(store, Engine) else db.make_engine(store)
    try:
        db.check_schema(engine)
    except db.StoreUnreachable as exc:
        raise db.StoreUnreachable(
            f"bml_core.init: the store {engine.url.render_as_string(hide_password=True)} is unreachable "
            f"({exc}); start it, or pass store=... / set BML_DATABASE_URL to one that is up"
        ) from exc
    except db.SchemaError:
        if engine.dialect.name != "sqlite":
            raise
        db.upgrade(engine)
    return engine


def create_run_and_sink(
    engine: Any, doc: dict[str, Any], strategy: str, sink_options: dict[str, Any]
) -> tuple[int, Any]:
    """(run id, DbMetricSink) for a new own-loop run described by `doc` (the config JSON)."""
    from sqlalchemy.exc import SQLAlchemyError

    import db
    from db.own_runs import create_own_run, reap_own_runs

    with contextlib.suppress(SQLAlchemyError, db.StoreError):
        reap_own_runs(engine)  # the runs of earlier processes that died
    run_id = create_own_run(
        engine,
        name=doc["name"],
        group=doc["group"],
        config=doc,
        strategy=strategy,
        dataset=doc["dataset"]["name"],
        seed=doc["seed"],
        tags=doc["tags"],
    )
    options = {
        "heartbeat_interval_s": _float_env("BML_HEARTBEAT_INTERVAL_S", 5.0),
        "close_timeout_s": 60.0,
        **sink_options,
    }
    return run_id, db.DbMetricSink(engine, run_id, **options)


def update_config_in_store(engine: Any, run_id: int, doc: dict[str, Any]) -> None:
    from db.own_runs import update_own_config

    update_own_config(engine, run_id, {**doc, "tags": list(dict.fromkeys([*doc["tags"], "own-loop"]))})


def stop_requested_in_store(engine: Any, run_id: int) -> bool:
    """Has the run been asked to stop: its cancel flag set, or it is no longer `running`
    (the reaper failed it, it was deleted)?"""
    from db.own_runs import own_run_should_stop

    return own_run_should_stop(engine, run_id)
