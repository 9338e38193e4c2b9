"""Fixtures of the report tests: a migrated SQLite store in the test's own BML_HOME (the
CLI opens the same one), or the worker suite's embedded broker and `bml worker` processes
for `bml reproduce`. Runs are added with `tests.helpers.report_runs.add_run`."""

from __future__ import annotations

from tests.helpers.fixtures import embedded_cluster, engine  # noqa: F401 (fixtures)
