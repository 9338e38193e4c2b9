"""Errors the store raises: each names what is wrong and what to do about it."""

from __future__ import annotations


class StoreError(RuntimeError):
    """Base class of every store error."""


class SchemaError(StoreError):
    """The database is not at the schema revision this code needs (run `bml db upgrade`)."""


class StoreUnreachable(SchemaError):
    """The database cannot be reached at all (server down, wrong URL): migrating won't help."""


class RunNotFound(StoreError, LookupError):
    """No run with this id."""

    def __init__(self, run_id: object):
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r} in the store (see `bml runs`)")


class InvalidMetricKey(StoreError, ValueError):
    """A metric key the store refuses (empty, not a string, or too long)."""


class InvalidRunState(StoreError, ValueError):
    """A lifecycle call that does not fit the run's status (e.g. deleting a running run)."""


class SeriesNotFound(StoreError, LookupError):
    """The run has no series with this key."""
