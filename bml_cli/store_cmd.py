"""`bml runs`, `bml events`, `bml export` and `bml db upgrade`: the store seen from the command line, and
the run + sink that `bml train --db` streams into. Exit codes: 0 ok, 2 invalid input (an
unknown run id, a bad option), 1 failure (e.g. a database that is not migrated)."""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
from pathlib import Path
from typing import IO, Any

import typer

from bml_cli.common import EXIT_FAILURE, check_output_file, check_run_id, fail, plain

EXPORT_FORMATS = ("csv", "parquet", "json")
EVENT_KINDS = ("alert", "log")


def _engine(check: bool = True) -> Any:
    """The store's engine; exits 1 with the reason when it is unreachable or not migrated."""
    from db import SchemaError, check_schema, make_engine
    from db.engine import missing_sqlite_file

    try:
        if check and (missing := missing_sqlite_file()) is not None:  # opening it would create it
            raise SchemaError(
                f"no store at {missing}: not migrated (nothing was created); run `bml db upgrade`"
            )
        engine = make_engine()
        if check:
            check_schema(engine)
    except SchemaError as exc:
        raise fail(f"error: {exc}", EXIT_FAILURE) from None
    if check and os.environ.get("BML_USER", "").strip():  # reads too: BML_USER must name an account
        from db import PermissionDenied, resolve_actor

        try:
            resolve_actor(engine, os.environ["BML_USER"].strip())
        except PermissionDenied as exc:
            raise fail(f"error: BML_USER: {exc}") from None
    return engine


def open_run_sink(cfg: Any) -> Any:
    """For `bml train --db`: a new run row, claimed by this process, and its DbMetricSink."""
    from db import DbMetricSink, claim_run, create_run
    from services.actions import current_actor

    engine = _engine()
    run_id = create_run(engine, cfg, owner=current_actor(engine).name)
    claim_run(engine, run_id, worker=f"bml-train@{socket.gethostname()}:{os.getpid()}")
    typer.echo(f"store run id: {run_id}")
    return DbMetricSink(engine, run_id)


def _write_export(engine: Any, run_id: int, fmt: str, out: IO[Any] | Path) -> int:
    from db import get_run, run_points

    run = get_run(engine, run_id)
    series = run_points(engine, run_id)
    n = sum(len(s.steps) for s in series.values())
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        keys = [s.key for s in series.values() for _ in s.steps]
        table = pa.table(
            {
                "key": pa.array(keys, pa.string()),
                "step": pa.array([st for s in series.values() for st in s.steps], pa.int64()),
                "value": pa.array([v for s in series.values() for v in s.values], pa.float64()),
            }
        )
        pq.write_table(table, out if isinstance(out, Path) else sys.stdout.buffer)
        return n
    fh: IO[str] = out.open("w", newline="") if isinstance(out, Path) else out
    try:
        if fmt == "csv":
            from bml_core.csvsafe import safe_cell

            writer = csv.writer(fh)
            writer.writerow(["key", "step", "value"])
            for s in series.values():
                writer.writerows(
                    (safe_cell(s.key), st, repr(v)) for st, v in zip(s.steps, s.values, strict=True)
                )
        else:
            from db.models import json_safe

            # non-finite values are written as the strings "nan", "inf", "-inf" (as metrics.jsonl)
            doc = {
                "run": run.to_dict(),
                "series": {s.key: {"steps": s.steps, "values": s.values} for s in series.values()},
            }
            json.dump(json_safe(doc), fh, separators=(",", ":"))
            fh.write("\n")
    finally:
        if isinstance(out, Path):
            fh.close()
    return n


def _format_runs(runs: list[Any]) -> str:
    header = f"{'id':>6}  {'status':<10} {'progress':>8}  {'try':>3}  {'group':<20} {'name':<28} {'strategy':<12} {'owner':<12} dataset"
    lines = [header]
    for r in runs:
        group, name, strategy, dataset = (plain(v) for v in (r.group, r.name, r.strategy, r.dataset))
        lines.append(
            f"{r.id:>6}  {r.status:<10} {r.progress * 100:>7.1f}%  {r.attempt:>3}  {group[:20]:<20} "
            f"{name[:28]:<28} {strategy[:12]:<12} {plain(r.owner or '-')[:12]:<12} {dataset}"
        )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The store: migrations.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """Apply the store's migrations (BML_DATABASE_URL, default BML_HOME/bml.db)."""
        from db import head_revision, upgrade
        from db.engine import describe

        engine = _engine(check=False)
        try:
            rev = upgrade(engine)
        except Exception as exc:  # noqa: BLE001 - reported, exit 1
            raise fail(
                f"error: could not migrate {describe(engine)}: {type(exc).__name__}: {exc}", EXIT_FAILURE
            ) from None
        typer.echo(f"store {describe(engine)} is at revision {rev} (head {head_revision()})")

    @app.command("runs")
    def runs(
        status: str = typer.Option(
            None, "--status", help="queued | running | requeued | succeeded | failed | cancelled"
        ),
        as_json: bool = typer.Option(False, "--json", help="print a JSON list of run objects"),
        group: str = typer.Option(None, "--group", help="only this group"),
        limit: int = typer.Option(50, "--limit", min=1, help="at most this many runs, newest first"),
        owner: str = typer.Option(None, "--owner", help="only runs launched by this user"),
    ) -> None:
        """List runs, newest first."""
        from db import RUN_STATUSES, list_runs

        if status is not None and status not in RUN_STATUSES:
            raise fail(f"error: unknown status {status!r}; one of {', '.join(RUN_STATUSES)}")
        page = list_runs(_engine(), status=status, group=group, owner=owner, limit=limit)
        if as_json:
            from db.models import json_safe

            typer.echo(json.dumps([json_safe(r.to_dict()) for r in page.runs], indent=2))
            return
        if not page.runs:
            typer.echo("no runs")
            return
        typer.echo(_format_runs(page.runs))
        if page.total > len(page.runs):
            typer.echo(f"({len(page.runs)} of {page.total}; --limit to see more)")

    @app.command("events")
    def events(
        run_id: int = typer.Argument(..., help="the run's id (see `bml runs`)"),
        as_json: bool = typer.Option(False, "--json", help="print a JSON list of event objects"),
        kind: str = typer.Option(None, "--kind", help="only this kind: alert | log"),
    ) -> None:
        """A run's events (status changes, advisories, alerts), oldest first."""
        from db import RunNotFound, run_events
        from db.models import json_safe

        if kind is not None and kind not in EVENT_KINDS:
            raise fail(f"error: unknown kind {kind!r}; one of {', '.join(EVENT_KINDS)}")
        try:
            rows = run_events(_engine(), run_id, kind=kind)
        except RunNotFound as exc:
            raise fail(f"error: {exc}") from None
        if as_json:
            typer.echo(json.dumps([json_safe(e.to_dict()) for e in rows], indent=2, ensure_ascii=False))
            return
        if not rows:
            typer.echo("no events")
            return
        for e in rows:
            step = "" if e.step is None else f" step {e.step}"
            typer.echo(f"{e.id:>6}  {e.time:%Y-%m-%d %H:%M:%S}  {e.kind:<5} {e.level:<7}{step}  {e.message}")

    @app.command("export")
    def export(
        run_id: int = typer.Argument(..., help="the run's id (see `bml runs`)"),
        fmt: str = typer.Option("csv", "--format", help="csv | parquet | json"),
        output: str = typer.Option(
            None, "-o", "--output", help="file to write (default run-ID.FORMAT; - for stdout)"
        ),
    ) -> None:
        """Write a run's metric series: csv (key,step,value), parquet, or json."""
        from db import RunNotFound

        if fmt not in EXPORT_FORMATS:
            raise fail(f"error: unknown format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")
        check_run_id(run_id)
        target: IO[Any] | Path = sys.stdout if output == "-" else Path(output or f"run-{run_id}.{fmt}")
        if isinstance(target, Path):
            check_output_file(target)
        engine = _engine()
        try:
            n = _write_export(engine, run_id, fmt, target)
        except RunNotFound as exc:
            raise fail(f"error: {exc}") from None
        except OSError as exc:
            raise fail(f"error: could not write {target}: {exc.strerror or exc}", EXIT_FAILURE) from None
        if isinstance(target, Path):
            typer.echo(f"wrote {n} points of run {run_id} to {target}")
