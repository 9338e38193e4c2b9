"""Typed SQLAlchemy 2 models of the store: runs, their tags, metric series, points,
rollups (pre-aggregated step blocks for downsampling), events, sweeps, and the accounts
(users) with their audit trail (who cancelled, retried, deleted a run or changed a user).

The schema itself is created by the Alembic migrations in `db/migrations/`; these models
must match them (a test compares the two)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

MAX_NAME_LENGTH = 200
MAX_TAG_LENGTH = 100
MAX_KEY_LENGTH = 200


def json_safe(value: Any) -> Any:
    """A copy of `value` that every JSON column accepts: NaN and +/-inf become the strings
    "nan", "inf" and "-inf" (PostgreSQL's JSON rejects them), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class JsonDoc(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL; non-finite floats stored as strings."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json_safe(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always read back as timezone-aware UTC datetimes
    (SQLite keeps them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], datetime | None] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite hands back the stored text; fromisoformat reads it several times faster
        # than the generic parser (it matters when 10,000 runs are listed).
        def parse(value: Any) -> datetime | None:
            if value is None:
                return None
            return datetime.fromisoformat(value).replace(tzinfo=UTC)

        return parse


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Sweep(Base):
    """A set of runs launched together (e.g. a grid or the seeds of one setting)."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    spec: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Run(Base):
    """One training run; the source of truth for its status (the broker only says "look at run N")."""

    __tablename__ = "runs"
    # ids are never reused after a delete (an old /live?run=N link must not show another
    # run): AUTOINCREMENT on SQLite; PostgreSQL's sequences never hand a value out twice
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    group: Mapped[str] = mapped_column("group_name", String(MAX_NAME_LENGTH), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    strategy: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), index=True)
    dataset: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    total_steps: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    traceback_tail: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    dropped_points: Mapped[int] = mapped_column(BigInteger, default=0)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id"), index=True)
    # who launched it (a user name; no foreign key: runs outlive their owner's account)
    owner: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH), index=True)
    # what it ran on (versions, commit, hardware, data fingerprints), recorded by the run process
    environment: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    # the run this one exactly reruns (`bml rerun`); no foreign key: the original may be deleted
    rerun_of: Mapped[int | None] = mapped_column(Integer)
    # the run this one is a retry (a clone) of: Compare counts the newest copy of a retried
    # seed; NULL for every other run (an identical relaunch is its own run). Deleting the
    # original sets it to NULL (db.delete_run).
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)


class RunTag(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(MAX_TAG_LENGTH), primary_key=True)

    __table_args__ = (Index("ix_run_tags_tag", "tag"),)


class Series(Base):
    """One metric key of one run (`train/loss`, `val/acc/audio`, ...)."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))

    __table_args__ = (UniqueConstraint("run_id", "key", name="uq_series_run_key"),)


class Point(Base):
    """One value of a series at a step. NULL stores NaN (SQLite cannot hold NaN, and NULL
    keeps NaN out of min/max/sum on both backends); +/-inf are stored as such. No foreign
    key: the hot insert path stays lean and `delete_run` removes points explicitly."""

    __tablename__ = "points"

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float | None] = mapped_column(Double)

    __table_args__ = {"sqlite_with_rowid": False}


class Rollup(Base):
    """Aggregate of one fixed-width block of steps of a series (`block` = step // width),
    kept up to date by the writer at every flush, for widths in `db.ingest.ROLLUP_WIDTHS`.
    `n_values` counts the non-NaN values, `n_points` every point; `vsum` is NULL when the
    block has no value or its sum is NaN (+inf and -inf together)."""

    __tablename__ = "rollups"

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    width: Mapped[int] = mapped_column(Integer, primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vmin: Mapped[float | None] = mapped_column(Double)
    vmax: Mapped[float | None] = mapped_column(Double)
    vsum: Mapped[float | None] = mapped_column(Double)
    n_values: Mapped[int] = mapped_column(BigInteger)
    n_points: Mapped[int] = mapped_column(BigInteger)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    last_value: Mapped[float | None] = mapped_column(Double)

    __table_args__ = {"sqlite_with_rowid": False}


class Event(Base):
    """A human-readable event of a run: advisories, checkpoints, errors, dropped points,
    and imbalance alerts (`kind` "alert", with their step, a key unique per run and the
    alert document: severity, modality, detector, evidence, advice)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))  # NULL: a log event (before 0003 too)
    step: Mapped[int | None] = mapped_column(BigInteger)
    alert_key: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH))
    data: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)

    __table_args__ = (Index("uq_events_run_alert_key", "run_id", "alert_key", unique=True),)


class User(Base):
    """An account when auth is on: a role (viewer | operator | admin) and an Argon2 password
    hash (NULL for accounts that log in through OIDC only). `failed_logins` and
    `locked_until` throttle repeated wrong passwords; `sessions_after` voids older logins."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # login cookies issued before this are void (set by logout: it ends every session)
    sessions_after: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEvent(Base):
    """Who did what: cancel, retry, delete, rerun of a run, and user changes. No foreign
    key: the trail outlives the deleted run or user it names."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), index=True)
    action: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    target_user: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH))
    detail: Mapped[str | None] = mapped_column(Text)
