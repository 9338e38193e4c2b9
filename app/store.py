"""The dashboard's handle on the store: one cached engine per database URL
(`st.cache_resource`), the schema check the app runs before it draws anything, and the
shared, briefly cached reads (`st.cache_data(ttl=...)`). Every read goes through the
plain-data query API of `db`; no SQL here."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import Engine

import db
from app.labels import run_choice_label

shared_read_ttl_s = 2.0
finished_series_ttl_s = 300.0


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    return db.make_engine(url)


def engine() -> Engine:
    """The engine of the store the environment names (BML_DATABASE_URL or BML_HOME)."""
    return _engine_for(db.database_url())


def schema_problem(eng: Engine) -> str | None:
    """Why the app cannot use this store (not migrated, unreachable), or None."""
    problem = store_problem(eng)
    return None if problem is None else problem[1]


def store_problem(eng: Engine) -> tuple[str, str] | None:
    """("unreachable" | "schema", the reason) when the app cannot use this store, or None."""
    try:
        db.check_schema(eng)
    except db.StoreUnreachable as exc:
        return "unreachable", str(exc)
    except db.SchemaError as exc:
        return "schema", str(exc)
    return None


@st.cache_data(ttl=shared_read_ttl_s, show_spinner=False)
def run_choices(url: str, limit: int = 500) -> dict[int, str]:
    """Recent runs as {id: label} for pickers (newest first)."""
    page = db.list_runs(_engine_for(url), limit=limit)
    return {r.id: run_choice_label(r) for r in page.runs}


@st.cache_data(ttl=shared_read_ttl_s, show_spinner=False)
def groups(url: str) -> dict[str, int]:
    return db.list_groups(_engine_for(url))


@st.cache_data(ttl=finished_series_ttl_s, show_spinner=False, max_entries=2_000)
def finished_downsampled(
    url: str, run_id: int, keys: tuple[str, ...], max_buckets: int
) -> dict[str, db.Downsampled]:
    """Downsampled series of a run that has ended (they no longer change, so they are
    cached longer; callers pass only finished runs)."""
    return db.downsampled_many(_engine_for(url), run_id, list(keys), max_buckets)


@st.cache_data(ttl=finished_series_ttl_s, show_spinner=False, max_entries=2_000)
def finished_group_aggregate(
    url: str, key: str, run_ids: tuple[int, ...], max_buckets: int
) -> db.GroupAggregate:
    """Mean ± std over runs that have all ended (cached longer, as `finished_downsampled`)."""
    return db.group_aggregate(_engine_for(url), key, run_ids=list(run_ids), max_buckets=max_buckets)
