"""The tracking suite runs on the store suite's backends: SQLite and the machine's real
PostgreSQL (fixtures `engine`, `store_url`, `pg_proxy` of tests/store/conftest.py)."""

from __future__ import annotations

from tests.store.conftest import (  # noqa: F401 - fixtures
    _engines,
    backend,
    engine,
    pg_databases,
    pg_proxy,
    store_url,
)
