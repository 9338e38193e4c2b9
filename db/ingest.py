"""The write path for metric points: series creation, the bulk insert (raw DBAPI
`executemany` on SQLite, one `unnest` statement on PostgreSQL), and the rollups.

Rollups are aggregates of fixed-width step blocks (`ROLLUP_WIDTHS`) with min, max, sum,
counts and the last value. After every insert the blocks touched are recomputed from the
points (the finest width) and from the next finer width (the coarser ones), so they stay
exact when steps are written again (a resumed run) and a downsampled read never scans
the whole series. Every function takes a Connection inside the caller's transaction."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Insert, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite

from db.engine import write_tx
from db.errors import InvalidMetricKey, RunNotFound
from db.models import MAX_KEY_LENGTH, Run, Series

ROLLUP_WIDTHS: tuple[int, ...] = (16, 256, 4096)  # steps per block, finest first

PointRow = tuple[int, int, float | None]  # (series_id, step, value); None stores NaN

_SQLITE_INSERT = (
    "INSERT INTO points (series_id, step, value) VALUES (?, ?, ?) "
    "ON CONFLICT (series_id, step) DO UPDATE SET value = excluded.value"
)
# PostgreSQL: binary COPY into a per-connection temporary table, then one upsert from it
# (NULLIF stores NaN as NULL). Rows must be unique on (series_id, step) there: ON CONFLICT
# cannot touch a row twice in one statement.
_POSTGRES_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS bml_points_in "
    "(series_id integer, step bigint, value double precision) ON COMMIT DELETE ROWS"
)
_POSTGRES_COPY = "COPY bml_points_in (series_id, step, value) FROM STDIN (FORMAT BINARY)"
_POSTGRES_UPSERT = (
    "INSERT INTO points (series_id, step, value) "
    "SELECT series_id, step, NULLIF(value, 'NaN'::float8) FROM bml_points_in "
    "ON CONFLICT (series_id, step) DO UPDATE SET value = EXCLUDED.value"
)

_ROLLUP_COLUMNS = (
    "series_id, width, block, vmin, vmax, vsum, n_values, n_points, first_step, last_step, last_value"
)
_ROLLUP_UPSERT = (
    "ON CONFLICT (series_id, width, block) DO UPDATE SET vmin = excluded.vmin, vmax = excluded.vmax, "
    "vsum = excluded.vsum, n_values = excluded.n_values, n_points = excluded.n_points, "
    "first_step = excluded.first_step, last_step = excluded.last_step, last_value = excluded.last_value"
)
# A NULL sum with values in the block means NaN (SQLite turns inf + -inf into NULL): it
# must poison the coarser sums instead of being skipped by sum().
NAN_SUM_SQL = "CASE WHEN sum(CASE WHEN vsum IS NULL AND n_values > 0 THEN 1 ELSE 0 END) > 0 THEN NULL ELSE sum(vsum) END"


def _rollup_from_points(width: int) -> Any:
    return text(
        f"INSERT INTO rollups ({_ROLLUP_COLUMNS}) "
        f"SELECT a.series_id, {width}, a.block, a.vmin, a.vmax, a.vsum, a.n_values, a.n_points, "
        "a.first_step, a.last_step, p.value "
        f"FROM (SELECT series_id, step / {width} AS block, min(value) AS vmin, max(value) AS vmax, "
        "sum(value) AS vsum, count(value) AS n_values, count(*) AS n_points, "
        "min(step) AS first_step, max(step) AS last_step FROM points "
        "WHERE series_id IN :sids AND step >= :lo AND step < :hi "
        f"GROUP BY series_id, step / {width}) AS a "
        "JOIN points AS p ON p.series_id = a.series_id AND p.step = a.last_step "
        f"WHERE true {_ROLLUP_UPSERT}"
    ).bindparams(bindparam("sids", expanding=True))


def _rollup_from_rollups(width: int, child: int) -> Any:
    ratio = width // child
    return text(
        f"INSERT INTO rollups ({_ROLLUP_COLUMNS}) "
        f"SELECT a.series_id, {width}, a.block, a.vmin, a.vmax, a.vsum, a.n_values, a.n_points, "
        "a.first_step, a.last_step, c.last_value "
        f"FROM (SELECT series_id, block / {ratio} AS block, min(vmin) AS vmin, max(vmax) AS vmax, "
        f"{NAN_SUM_SQL} AS vsum, sum(n_values) AS n_values, sum(n_points) AS n_points, "
        "min(first_step) AS first_step, max(last_step) AS last_step, max(block) AS last_block "
        f"FROM rollups WHERE width = {child} AND series_id IN :sids AND block >= :lo AND block < :hi "
        f"GROUP BY series_id, block / {ratio}) AS a "
        f"JOIN rollups AS c ON c.series_id = a.series_id AND c.width = {child} AND c.block = a.last_block "
        f"WHERE true {_ROLLUP_UPSERT}"
    ).bindparams(bindparam("sids", expanding=True))


_ROLLUP_STATEMENTS: list[tuple[int, int, Any]] = [
    (
        w,
        (ROLLUP_WIDTHS[i - 1] if i else 1),
        _rollup_from_rollups(w, ROLLUP_WIDTHS[i - 1]) if i else _rollup_from_points(w),
    )
    for i, w in enumerate(ROLLUP_WIDTHS)
]


def validate_key(key: object) -> str:
    """Return the key, or raise InvalidMetricKey saying why it is refused."""
    if not isinstance(key, str):
        raise InvalidMetricKey(f"metric key {key!r} refused: keys must be strings")
    if not key:
        raise InvalidMetricKey("metric key refused: it is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidMetricKey(
            f"metric key {key[:40]!r}... refused: it is {len(key)} characters long, "
            f"the limit is {MAX_KEY_LENGTH}"
        )
    return key


def dialect_insert(conn: Connection, table: Any) -> Insert:
    """INSERT with `on_conflict_do_*` for the connection's backend."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def ensure_series(conn: Connection, run_id: int, keys: Iterable[str]) -> dict[str, int]:
    """Ids of the run's series for `keys`, creating the missing ones. Raises
    InvalidMetricKey for a refused key (nothing is created then)."""
    wanted = [validate_key(k) for k in dict.fromkeys(keys)]
    if not wanted:
        return {}
    query = select(Series.key, Series.id).where(Series.run_id == run_id, Series.key.in_(wanted))
    ids: dict[str, int] = {k: i for k, i in conn.execute(query)}
    missing = [k for k in wanted if k not in ids]
    if missing:
        stmt = dialect_insert(conn, Series.__table__).on_conflict_do_nothing(index_elements=["run_id", "key"])  # type: ignore[attr-defined]
        conn.execute(stmt, [{"run_id": run_id, "key": k} for k in missing])
        ids.update({k: i for k, i in conn.execute(query)})
    return ids


def insert_points(conn: Connection, rows: Sequence[PointRow], unique: bool = False) -> None:
    """Upsert points in one bulk statement; when a (series, step) pair repeats, the last
    value wins. `unique=True` promises there is no repeat (skips a dedupe pass on PostgreSQL)."""
    if not rows:
        return
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        if conn.dialect.name == "postgresql":
            if not unique:
                rows = list({(r[0], r[1]): r for r in rows}.values())
            info = conn.connection.info
            if not info.get("bml_points_in"):
                cur.execute(_POSTGRES_STAGE)
                info["bml_points_in"] = True
            with cur.copy(_POSTGRES_COPY) as copy:
                copy.set_types(["int4", "int8", "float8"])
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
            cur.execute(_POSTGRES_UPSERT)
        else:
            cur.executemany(_SQLITE_INSERT, rows)
    finally:
        cur.close()


def refresh_rollups(conn: Connection, spans: Mapping[int, tuple[int, int]]) -> None:
    """Recompute every rollup block touching steps lo..hi of each series {series_id: (lo, hi)}."""
    by_span: dict[tuple[int, int], list[int]] = defaultdict(list)
    for sid, span in spans.items():
        by_span[span].append(sid)
    for (lo, hi), sids in by_span.items():
        for width, child, stmt in _ROLLUP_STATEMENTS:
            first, last = lo // width, hi // width
            if child == 1:
                conn.execute(stmt, {"sids": sids, "lo": first * width, "hi": (last + 1) * width})
            else:
                ratio = width // child
                conn.execute(stmt, {"sids": sids, "lo": first * ratio, "hi": (last + 1) * ratio})


def spans_of(rows: Iterable[PointRow]) -> dict[int, tuple[int, int]]:
    spans: dict[int, tuple[int, int]] = {}
    for sid, step, _ in rows:
        old = spans.get(sid)
        spans[sid] = (step, step) if old is None else (min(old[0], step), max(old[1], step))
    return spans


def write_points(
    engine: Engine, run_id: int, series: Mapping[str, Iterable[tuple[int, float | None]]]
) -> int:
    """Write {key: [(step, value), ...]} for a run in one transaction; idempotent on
    (series, step). Returns the number of points written. NaN and +/-inf are kept; a bad
    key raises InvalidMetricKey, a negative step ValueError, an unknown run RunNotFound."""
    for key in series:
        validate_key(key)
    with write_tx(engine) as conn:
        if conn.execute(select(Run.id).where(Run.id == run_id)).first() is None:
            raise RunNotFound(run_id)
        ids = ensure_series(conn, run_id, series)
        rows: list[PointRow] = []
        for key, points in series.items():
            sid = ids[key]
            for step, value in points:
                if not 0 <= step < 2**63:
                    raise ValueError(f"step {step} of {key!r} refused: steps start at 0 (64-bit integers)")
                v = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
                rows.append((sid, int(step), None if v is None else float(v)))
        insert_points(conn, rows)
        refresh_rollups(conn, spans_of(rows))
    return len(rows)
