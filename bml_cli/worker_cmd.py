"""`bml submit`, `bml cancel`, `bml retry`, `bml delete`, `bml rerun`, `bml worker` and `bml up`: launching runs on Celery workers."""

from __future__ import annotations

from pathlib import Path

import typer

from bml_cli.common import (
    EXIT_FAILURE,
    EXIT_INVALID,
    check_run_id,
    check_webhook_or_exit,
    fail,
    invalid_input_exits,
    no_such_run,
    overrides_option,
    read_run_config,
)
from bml_cli.store_cmd import _engine
from bml_core.seeds import SeedError, parse_seeds
from services.processes import detect_gpus, start_workers, stop_processes, wait_for


def parse_ids(text: str, what: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be comma-separated integers, e.g. 0,1,2") from None
    if not ids or any(i < 0 for i in ids):
        raise typer.BadParameter(f"{what} must be integers >= 0, e.g. 0,1,2")
    return ids


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        config: Path = typer.Argument(None, help="run config (YAML or JSON)"),
        set_: list[str] = overrides_option(),
        seeds: str = typer.Option(
            None, "--seeds", help="seeds, one run each: 0,1,2 or a range 0-4 (at most 64)"
        ),
        preset: str = typer.Option(None, "--preset", help="start from a paper preset"),
    ) -> None:
        """Validate, store and enqueue run(s); prints one run id per line."""
        from db import PermissionDenied
        from services.actions import BrokerUnavailable
        from services.actions import submit as submit_runs

        engine = _engine()
        try:
            seed_list = parse_seeds(seeds) if seeds else None
        except SeedError as exc:
            raise fail(f"error: --seeds: {exc}") from None
        with invalid_input_exits():
            cfg = read_run_config(config, set_, preset)
            try:
                ids = submit_runs(cfg, seed_list, engine=engine)
            except BrokerUnavailable as exc:
                raise fail(f"error: {exc}", EXIT_FAILURE) from None
            except PermissionDenied as exc:
                raise fail(f"error: {exc}") from None
        for run_id in ids:
            typer.echo(run_id)

    @app.command()
    def cancel(run_id: int = typer.Argument(..., help="the run to cancel")) -> None:
        """Request cancellation: a queued run ends at once, a running one within seconds."""
        from db import PermissionDenied, RunNotFound
        from services.actions import cancel as cancel_run

        check_run_id(run_id)
        try:
            status = cancel_run(run_id, engine=_engine())
        except RunNotFound:
            raise no_such_run(run_id) from None
        except PermissionDenied as exc:
            raise fail(f"error: {exc}") from None
        typer.echo(
            f"run {run_id}: " + ("cancelling (stops within seconds)" if status == "running" else status)
        )

    @app.command()
    def retry(run_id: int = typer.Argument(..., help="the run to retry")) -> None:
        """Queue a clone of the run (same config and seed) as a new run, recorded as its
        retry (`retry_of`: Compare counts the newest copy of the seed); prints its id."""
        from db import PermissionDenied, RunNotFound
        from services.actions import BrokerUnavailable
        from services.actions import retry as retry_run

        check_run_id(run_id)
        try:
            new_id = retry_run(run_id, engine=_engine())
        except RunNotFound:
            raise no_such_run(run_id) from None
        except (PermissionDenied, ValueError) as exc:  # ValueError: an own-loop run has no config to run
            raise fail(f"error: {exc}") from None
        except BrokerUnavailable as exc:
            raise fail(f"error: {exc}", EXIT_FAILURE) from None
        typer.echo(new_id)

    @app.command()
    def delete(
        run_id: int = typer.Argument(..., help="the run to delete"),
        yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
    ) -> None:
        """Delete a run with all its series and events (admins; a running run must be
        cancelled first). Its id is never given to another run."""
        from db import InvalidRunState, PermissionDenied, RunNotFound, get_run
        from services.actions import delete as delete_run

        engine = _engine()
        try:
            run = get_run(engine, run_id)
        except RunNotFound:
            raise no_such_run(run_id) from None
        if not yes and not typer.confirm(
            f"Delete run {run_id} ({run.name}, {run.status}) with all its data?", default=False, err=True
        ):
            raise fail(f"run {run_id}: kept")
        try:
            delete_run(run_id, engine=engine)
        except (PermissionDenied, InvalidRunState) as exc:
            raise fail(f"error: {exc}") from None
        typer.echo(f"run {run_id}: deleted")

    @app.command()
    def rerun(
        run_id: int = typer.Argument(..., help="the run to reproduce"),
        yes: bool = typer.Option(
            False, "--yes", help="queue it even if a data file or a major version changed"
        ),
    ) -> None:
        """A new run with the same resolved config and seed, linked to the original; prints
        its id. What changed since (data files, versions, code) is reported first; a changed
        data file or major version exits 2 unless --yes."""
        from db import PermissionDenied, RunNotFound
        from services.actions import BrokerUnavailable, rerun_check
        from services.actions import rerun as rerun_run

        check_run_id(run_id)
        engine = _engine()
        try:
            check = rerun_check(run_id, engine=engine)
        except RunNotFound:
            raise no_such_run(run_id) from None
        for note in check.notes:
            typer.echo(f"note: {note}", err=True)
        for item in check.blocking:
            typer.echo(f"changed: {item}", err=True)
        if check.blocking and not yes:
            typer.echo(
                f"error: run {run_id} cannot be reproduced exactly as things are ({len(check.blocking)} "
                "change(s) above); nothing was queued. Rerun with --yes to queue it anyway.",
                err=True,
            )
            raise typer.Exit(EXIT_INVALID)
        if not check.blocking and not check.notes:
            typer.echo(f"run {run_id}: same data files and versions; rerunning exactly", err=True)
        try:
            new_id = rerun_run(run_id, engine=engine)
        except PermissionDenied as exc:
            raise fail(f"error: {exc}") from None
        except BrokerUnavailable as exc:
            raise fail(f"error: {exc}", EXIT_FAILURE) from None
        typer.echo(new_id)

    @app.command()
    def worker(
        gpus: str = typer.Option(None, "--gpus", help="GPU indices, e.g. 0,1: one worker process per GPU"),
        cpu: bool = typer.Option(False, "--cpu", help="one CPU worker even when GPUs are present"),
        name: str = typer.Option(None, "--name", help="worker name (default cpu@HOST / gpuN@HOST)"),
        loglevel: str = typer.Option("INFO", "--loglevel"),
    ) -> None:
        """Start Celery workers: one per GPU, or one on the CPU when there is none."""
        check_webhook_or_exit()
        _engine()  # refuses an un-migrated store with the command that fixes it
        gpu_list = [] if cpu else (parse_ids(gpus, "--gpus") if gpus else detect_gpus())
        procs = start_workers(gpu_list, name, loglevel)
        raise typer.Exit(wait_for(procs))

    @app.command()
    def up(
        port: int = typer.Option(8501, "--port", help="dashboard port"),
        host: str = typer.Option("127.0.0.1", "--host", help="dashboard bind address"),
        gpus: str = typer.Option(None, "--gpus", help="GPU indices for the workers (default: all found)"),
        auth: bool = typer.Option(False, "--auth", help="require a login (as BML_AUTH=local)"),
        insecure_no_auth: bool = typer.Option(
            False, "--insecure-no-auth", help="serve a non-loopback address without a login (not recommended)"
        ),
    ) -> None:
        """Embedded mode: the store (SQLite), a broker that needs no server, one worker per
        GPU (or one CPU worker) and the dashboard, until Ctrl-C. Binding anything but
        loopback needs `--auth` (exit 2 otherwise)."""
        from app.auth import auth_mode
        from bml_cli.dashboard_cmd import check_port_or_exit, require_accounts, resolve_auth
        from db import make_engine, upgrade
        from db.engine import bml_home
        from services.processes import start_dashboard

        mode = resolve_auth(host, auth, insecure_no_auth)
        check_webhook_or_exit()
        home = bml_home()
        home.mkdir(parents=True, exist_ok=True)
        upgrade(make_engine())
        require_accounts(mode)
        check_port_or_exit(host, port)  # before anything starts: never report another instance's address
        gpu_list = parse_ids(gpus, "--gpus") if gpus else detect_gpus()
        procs = start_workers(gpu_list, log_dir=home / "logs")
        dashboard = start_dashboard(port, host, auth_mode(), log_dir=home / "logs")
        procs.append(dashboard)
        typer.echo(f"BML Studio: store and broker under {home}; {len(gpu_list) or 1} worker(s)")
        from services.processes import dashboard_url, wait_until_healthy

        url = dashboard_url(port, host)
        if not wait_until_healthy(url, alive=dashboard):
            typer.echo(
                f"error: the dashboard did not come up on {url} (is port {port} free? see "
                f"{home / 'logs' / 'dashboard.log'})",
                err=True,
            )
            stop_processes(procs)
            raise typer.Exit(EXIT_FAILURE)
        typer.echo(f"dashboard: {url}")
        raise typer.Exit(wait_for(procs))
