"""Helpers shared by the CLI commands: config loading with field errors and exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from bml_core.config import ConfigError, RunConfig, load_config
from bml_core.errors import DatasetError  # torch-free (bml_core.data would load torch)

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2


def bml_home() -> Path:
    return Path(os.environ.get("BML_HOME", ".bml")).resolve()


def fail(message: str, code: int = EXIT_INVALID) -> typer.Exit:
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
        typer.echo(f"error: invalid dataset:\n  {exc.field}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def read_run_config(
    config: Path | None, overrides: list[str] | None, preset: str | None = None, device: str | None = None
) -> RunConfig:
    sets = list(overrides or [])
    if device:
        sets.append(f"train.device={device}")
    return load_config(config, sets, preset=preset)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)
