"""Helpers shared by the CLI commands: config loading with field errors and exit codes."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from bml_core.config import ConfigError, RunConfig, load_config
from bml_core.errors import DatasetError  # torch-free (bml_core.data would load torch)

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2
MAX_RUN_ID = 2**63 - 1  # run ids are BIGINT-sized; larger numbers name no run


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(text: object) -> str:
    """User text (names, groups, messages) for the terminal: control characters (escape
    codes, NUL, newlines) become spaces, so stored text cannot drive the terminal."""
    return _CONTROL.sub(" ", str(text))


def check_run_id(run_id: int) -> int:
    """An id the store could hold, else exit 2 with the usual 'no run' message."""
    if not 0 <= run_id <= MAX_RUN_ID:
        raise no_such_run(run_id)
    return run_id


def no_such_run(run_id: int) -> typer.Exit:
    """The usual 'no run' message (exit 2): `raise no_such_run(run_id) from None`."""
    return fail(f"error: no run with id {run_id} (see `bml runs`)")


def check_output_file(path: Path, what: str = "-o") -> Path:
    """A file to write: its folder must exist and it must not be a folder itself (exit 2)."""
    if path.is_dir():
        raise fail(f"error: {what} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise fail(f"error: {what} {path}: the folder {path.parent} does not exist")
    return path


def bml_home() -> Path:
    return Path(os.environ.get("BML_HOME", ".bml")).resolve()


def fail(message: str, code: int = EXIT_INVALID) -> typer.Exit:
    """Print `message` on stderr; the exit to raise: `raise fail(f"error: {exc}") from None`."""
    typer.echo(message, err=True)
    return typer.Exit(code)


def print_config_errors(exc: ConfigError, what: str = "invalid config") -> None:
    typer.echo(f"error: {what}:", err=True)
    for path, msg in exc.errors:
        typer.echo(f"  {path}: {msg}", err=True)


@contextmanager
def invalid_input_exits() -> Iterator[None]:
    """Config and dataset errors -> exit 2 with the field and message on stderr."""
    try:
        yield
    except ConfigError as exc:
        print_config_errors(exc)
        raise typer.Exit(EXIT_INVALID) from None
    except DatasetError as exc:
        raise fail(f"error: invalid dataset:\n  {exc.field}: {exc}") from None


def overrides_option() -> Any:
    """`--set KEY.PATH=VALUE` (repeatable) as `bml train` and `bml submit` take it; the
    values go to read_run_config."""
    return typer.Option(None, "--set", help="dotted override, e.g. train.epochs=3 (repeatable)")


def read_run_config(
    config: Path | None, overrides: list[str] | None, preset: str | None = None, device: str | None = None
) -> RunConfig:
    sets = list(overrides or [])
    if device:
        sets.append(f"train.device={device}")
    return load_config(config, sets, preset=preset)


def check_webhook_or_exit() -> None:
    """BML_ALERT_WEBHOOK, when set, must be an http(s) URL: checked once as a process starts."""
    from bml_core.alerts.webhook import webhook_env_error

    message = webhook_env_error()
    if message:
        raise fail(f"error: {message}")


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)
