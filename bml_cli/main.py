"""The `bml` command line: a thin typer front over bml_core, db and worker (CONTRACT.md)."""

from __future__ import annotations

import sys

import typer
from typer._click import exceptions as click  # typer 0.29 vendors its own click

from bml_cli import (
    dashboard_cmd,
    data_cmd,
    plugins_cmd,
    report_cmd,
    store_cmd,
    strategies_cmd,
    train_cmd,
    tune_cmd,
    user_cmd,
    worker_cmd,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="BML Studio: train, launch, watch and compare balanced multimodal learning runs.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="show the full traceback of an unexpected error (also after the command)"
    ),
) -> None:
    """BML Studio command line."""


train_cmd.register(app)
store_cmd.register(app)
data_cmd.register(app)
worker_cmd.register(app)
dashboard_cmd.register(app)
report_cmd.register(app)
strategies_cmd.register(app)
plugins_cmd.register(app)
user_cmd.register(app)
tune_cmd.register(app)


def _one_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return "".join(c for c in line if c.isprintable())[:500]


def main(argv: list[str] | None = None) -> None:
    """Run a command. Expected failures exit 2 (bad input) or 1 (failure) with one line on
    stderr; anything unexpected is reported the same way, with its traceback only under
    `--debug` (accepted anywhere on the command line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        # not standalone: click's usage errors come here and are printed as one line
        # (typer would draw a multi-line rich box; issue 25)
        rv = app(args=args, prog_name="bml", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "bml"
        typer.echo(f"error: {_one_line(exc.format_message())} (see: {where} --help)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        message = _one_line(str(exc)) or "no message"
        typer.echo(f"error: {type(exc).__name__}: {message} (run again with --debug for details)", err=True)
        sys.exit(1)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":
    main()
