"""`bml data ...`: turn a raw dataset folder into the features format (`prepare`) and list
the registered datasets (`list`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bml_cli.common import fail, invalid_input_exits

if TYPE_CHECKING:
    from bml_core.data.prepare import PrepareResult

PREPARABLE = ("cremad", "kinetics-sounds", "ucf101")


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """`--param key=value` (value read as YAML, e.g. frames=2, trust_pickle=[/data/ks/audio])."""
    from bml_core.config import ConfigError, parse_override

    params: dict[str, Any] = {}
    for text in items or []:
        path, value = parse_override(text)
        if len(path) != 1:
            raise ConfigError([(text, "a --param takes one key, e.g. --param frames=2")])
        params[path[0]] = value
    return params


def _prepare(
    dataset: str,
    src: Path,
    dst: Path,
    param: list[str] | None,
    trust_pickle: list[Path] | None,
    dtype: str,
    force: bool,
    progress: bool,
) -> PrepareResult:
    from bml_core.data.prepare import prepare_features

    with invalid_input_exits():
        params = parse_params(param)
        if trust_pickle:
            params["trust_pickle"] = [str(p) for p in trust_pickle] + list(params.get("trust_pickle", []))
        if progress:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            with Progress(
                TextColumn(f"encoding {dataset}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            ) as bar:
                task = bar.add_task("encode", total=None)

                def report(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result = prepare_features(dataset, src, dst, params, dtype, force, report)
        else:
            result = prepare_features(dataset, src, dst, params, dtype, force)
    return result


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(no_args_is_help=True, help="Prepare and list datasets.")
    app.add_typer(data_app, name="data")

    @data_app.command("prepare")
    def prepare(
        dataset: str = typer.Argument(..., help="cremad | kinetics-sounds | ucf101"),
        src: Path = typer.Argument(
            ..., help="the dataset's raw root folder (layout: see docs/ARCHITECTURE.md)"
        ),
        dst: Path = typer.Argument(..., help="features file to write: .h5 (row by row, resumable) or .npz"),
        param: list[str] = typer.Option(
            None, "--param", help="dataset parameter key=value, as dataset.params (repeatable)"
        ),
        trust_pickle: list[Path] = typer.Option(
            None, "--trust-pickle", help="a .pkl file or folder you trust to unpickle (runs code; repeatable)"
        ),
        dtype: str = typer.Option("float32", "--dtype", help="float32 | float16 (half the disk and memory)"),
        force: bool = typer.Option(False, "--force", help="overwrite DST if it was prepared otherwise"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    ) -> None:
        """Encode a raw dataset once into the features format; train on it with
        `dataset: {name: features, path: DST}`. Exit 0 ok, 2 invalid input (the file is named)."""
        if dataset.replace("_", "-") not in PREPARABLE:
            raise fail(f"error: cannot prepare {dataset!r}; choose one of {', '.join(PREPARABLE)}")
        partial = dst.with_name(dst.name + ".partial")
        try:
            result = _prepare(dataset, src, dst, param, trust_pickle, dtype, force, progress)
        except typer.Exit:
            if partial.exists():
                typer.echo(
                    f"note: the clips encoded so far are kept in {partial}; fix the file above and rerun "
                    "the same command to continue from there",
                    err=True,
                )
            raise
        if result.reused:
            typer.echo(
                f"{result.path} is up to date ({result.rows} clips); nothing to do (--force re-encodes)"
            )
            return
        encoded = result.rows - result.resumed_rows
        per_clip = result.seconds / encoded * 1000 if encoded else 0.0
        resumed = f", {result.resumed_rows} kept from an interrupted run" if result.resumed_rows else ""
        typer.echo(
            f"wrote {result.path}: {result.rows} clips in {result.seconds:.1f} s ({per_clip:.1f} ms per clip{resumed})"
        )
        typer.echo(f"train on it with: --set dataset.name=features --set dataset.path={result.path}")

    @data_app.command("list")
    def list_datasets() -> None:
        """Registered dataset names (built-ins and plug-ins) and what they are."""
        from bml_core.plugins import dataset_specs

        for name, spec in dataset_specs().items():
            typer.echo(f"{name:16s} {spec.description}")
