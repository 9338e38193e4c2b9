"""`bml report` (the comparison report of finished runs: HTML, JSON or Markdown) and
`bml reproduce` (a paper's grid of presets submitted as one group, optionally waited for
and reported). Exit codes: 0 ok, 2 invalid input (unknown group or run id, bad option,
nothing finished to report), 1 failure (store or broker unreachable)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bml_cli.common import EXIT_FAILURE, fail, invalid_input_exits, plain
from bml_cli.store_cmd import _engine
from bml_core.seeds import SeedError, parse_seeds
from services.report import make_report

# The papers' grids: (run name, preset or None for joint training with the grid's
# optimiser and schedule). Joint takes the non-strategy part of the first preset.
GRIDS: dict[str, list[tuple[str, str | None]]] = {
    "tpami2024": [
        ("joint", None),
        ("ogm", "tpami2024-ogm"),
        ("opm", "tpami2024-opm"),
        ("opm+ogm", "tpami2024-opm-ogm"),
    ],
    "cvpr2022": [("joint", None), ("ogm_ge", "cvpr2022-ogm-ge")],
}
wait_poll_s = 2.0


def grid_configs(
    grid: str, dataset: str, path: str | None, overrides: Sequence[str], group: str, seeds: Sequence[int]
) -> list[Any]:
    """One validated RunConfig per (method of the grid, seed), all in `group`."""
    from bml_core.config import (
        ConfigError,
        apply_override,
        apply_preset,
        parse_override,
        validate_config,
    )

    if grid not in GRIDS:
        raise ConfigError([("GRID", f"unknown grid {grid!r}; known: {', '.join(GRIDS)}")])
    first_preset = next(p for _, p in GRIDS[grid] if p is not None)
    configs = []
    for method, preset in GRIDS[grid]:
        raw: dict[str, Any] = {"name": f"{grid} {method}", "group": group, "dataset": {"name": dataset}}
        if path:
            raw["dataset"]["path"] = path
        raw = apply_preset(raw, preset or first_preset)
        if preset is None:
            raw["strategies"] = []
        for text in overrides:
            key, value = parse_override(text)
            apply_override(raw, key, value)
        for seed in seeds:
            configs.append(validate_config({**raw, "seed": seed}))
    return configs


def _write(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _echo_summary(doc: dict[str, Any]) -> None:
    from bml_core.compare.report import headline

    for line in headline(doc):
        typer.echo(line)
    for r in doc["excluded"]:
        typer.echo(plain(f"excluded: #{r['id']} {r['name']} ({r['label']}, seed {r['seed']}): {r['reason']}"))


def _report_command(
    groups: list[str],
    runs: str | None,
    fmt: str,
    output: str | None,
    by: list[str],
    baseline: str | None,
    include: list[str],
    title: str | None,
) -> None:
    from bml_cli.worker_cmd import parse_ids
    from bml_core.compare.report import FORMATS, render
    from db import RUN_STATUSES

    if fmt not in FORMATS:
        raise fail(f"error: unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if not groups and not runs:
        raise fail("error: say which runs: --group NAME (repeatable) or --runs ID,ID,...")
    bad = [s for s in include if s not in RUN_STATUSES]
    if bad:
        raise fail(f"error: --include {bad[0]!r} is not a status; one of {', '.join(RUN_STATUSES)}")
    try:
        ids = parse_ids(runs, "--runs") if runs else []
    except typer.BadParameter as exc:
        raise fail(f"error: {exc}") from None
    engine = _engine()
    try:
        doc = make_report(engine, groups, ids, by or None, baseline, ("succeeded", *include), title)
    except (ValueError, KeyError) as exc:
        raise fail(f"error: {exc.args[0] if exc.args else exc}") from None
    target = output or f"report-{_slug(groups, ids)}.{fmt}"
    _write(render(doc, fmt), target)
    if target != "-":
        _echo_summary(doc)
        typer.echo(f"wrote {fmt} report to {target}")


def _slug(groups: Sequence[str], ids: Sequence[int]) -> str:
    name = "-".join(groups) if groups else "runs-" + "-".join(str(i) for i in ids[:5])
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)[:80] or "report"


def _wait(engine: Any, run_ids: Sequence[int], timeout_s: float | None) -> bool:
    """Poll the store until every run has ended (True), or the timeout passes (False)."""
    import db

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = ""
    while True:
        runs = [db.get_run(engine, i) for i in run_ids]
        done = [r for r in runs if r.status in db.TERMINAL_STATUSES]
        line = f"{len(done)}/{len(runs)} runs ended; mean progress {sum(r.progress for r in runs) / len(runs):.0%}"
        if line != last:
            typer.echo(line)
            last = line
        if len(done) == len(runs):
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(wait_poll_s)


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        group: list[str] = typer.Option([], "--group", "-g", help="a group of runs (repeatable)"),
        runs: str = typer.Option(None, "--runs", help="run ids, comma-separated (instead of --group)"),
        fmt: str = typer.Option("html", "--format", "-f", help="html | json | md"),
        output: str = typer.Option(
            None, "-o", "--output", help="file to write (default report-NAME.FORMAT; - for stdout)"
        ),
        by: list[str] = typer.Option(
            [],
            "--by",
            help="group runs by this config path (repeatable; default: every path that differs but the seed)",
        ),
        baseline: str = typer.Option(
            None, "--baseline", help="the group label to compare against (default: joint training)"
        ),
        include: list[str] = typer.Option(
            [], "--include", help="also pool runs of this status when they have a summary (e.g. cancelled)"
        ),
        title: str = typer.Option(None, "--title", help="the report's title"),
    ) -> None:
        """The comparison report of finished runs: per strategy (seeds pooled) accuracy with
        intervals, the difference to joint training with its test and verdict, curves, and
        the published numbers for CREMA-D / Kinetics-Sounds."""
        _report_command(group, runs, fmt, output, by, baseline, include, title)

    @app.command("reproduce")
    def reproduce(
        grid: str = typer.Argument(
            ..., help="tpami2024 (joint, OGM, OPM, OPM+OGM) | cvpr2022 (joint, OGM-GE)"
        ),
        dataset: str = typer.Option(
            ..., "--dataset", help="dataset name (synthetic, cremad, kinetics_sounds, ...)"
        ),
        path: str = typer.Option(None, "--path", help="the dataset's file or folder (under BML_DATA_ROOTS)"),
        seeds: str = typer.Option("0-2", "--seeds", help="seeds: a range 0-2 or a list 0,1,2"),
        group: str = typer.Option(None, "--group", help="group name (default GRID-DATASET-TIME)"),
        overrides: list[str] = typer.Option(
            [], "--set", help="key.path=value on every run (e.g. train.epochs=2)"
        ),
        wait: bool = typer.Option(False, "--wait", help="wait for the runs, then write the report"),
        fmt: str = typer.Option("html", "--format", "-f", help="report format with --wait: html | json | md"),
        output: str = typer.Option(None, "-o", "--output", help="report file with --wait"),
        timeout_s: float = typer.Option(
            None, "--timeout-s", help="with --wait: give up after this many seconds"
        ),
    ) -> None:
        """Submit a paper's grid of presets over seeds as one group through the workers, then
        print the `bml report` command (or, with --wait, wait and write the report)."""
        from bml_core.compare.report import FORMATS
        from services import actions as client

        if fmt not in FORMATS:
            raise fail(f"error: unknown format {fmt!r}; one of {', '.join(FORMATS)}")
        try:
            seed_list = parse_seeds(seeds)
        except SeedError as exc:
            raise fail(f"error: --seeds: {exc}") from None
        name = group or f"{grid}-{dataset}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        engine = _engine()
        with invalid_input_exits():
            configs = grid_configs(grid, dataset, path, overrides, name, seed_list)
            try:
                _, ids = client.submit_group(
                    configs,
                    name=name,
                    spec={"grid": grid, "dataset": dataset, "seeds": seed_list, "set": list(overrides)},
                    engine=engine,
                )
            except client.BrokerUnavailable as exc:
                raise fail(f"error: {exc}", EXIT_FAILURE) from None
        typer.echo(
            f"submitted {len(ids)} runs of grid {grid} as group {name}: {', '.join(str(i) for i in ids)}"
        )
        target = output or f"report-{_slug([name], [])}.{fmt}"
        command = f"bml report --group {name} --format {fmt} -o {target}"
        if not wait:
            typer.echo(f"when they have finished: {command}")
            return
        if not _wait(engine, ids, timeout_s):
            raise fail(f"error: runs still going after {timeout_s:g}s; later: {command}", EXIT_FAILURE)
        _report_command([name], None, fmt, target, [], None, [], None)
