"""Every strategy x seeds on the bundled mfeat demo and the synthetic set, run through the
workers and read back from the store (issue 10, item 8; docs/benchmarks.md, "Every strategy
on mfeat and synthetic").

    python bench/strategy_grid.py [--strategies a,b] [--datasets mfeat,synthetic] [--seeds 0-2]
        [--epochs N] [--workers 2] [--home PATH] [--broker embedded|redis://HOST:PORT/DB]
        [--markdown PATH] [--json PATH] [--timeout-s S]

The strategies are the plug-in registry's (`bml strategies --json`); joint training is
always included (the baseline). Each run starts from the dataset's example config
(examples/mfeat-imbalance.yaml, examples/synthetic-joint.yaml) with `strategies` set to the
one strategy; what a strategy needs beyond that comes from its spec: a `needs_shared_head`
capability sets `model.head: shared`, and the spec's `epoch_fit` shortens a period that would
not fire within the run's epochs (every such setting is printed beside the row). The script
migrates a store in a fresh temporary BML_HOME (or --home), starts its own Celery workers
(`bml up`'s worker command, one run at a time each, one torch thread) on its own broker (the
embedded one under that home, or Redis under a key prefix of its own, deleted afterwards),
submits one group per dataset, waits, stops the workers, then reads every number from the
store's run summaries and pools them with bml_core.compare (grouping by strategy, mean and
std over seeds, paired t against joint over the same seeds with Holm's correction).
Exit status: 0 all runs succeeded, 1 a run did not (it is listed) or the grid timed out,
2 invalid arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):  # the project, and the benchmarks' shared helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from cluster_common import Cluster, cluster  # noqa: E402 - after the sys.path lines
from grid_markdown import JOINT, markdown  # noqa: E402

DATASETS = {
    "mfeat": ROOT / "examples" / "mfeat-imbalance.yaml",
    "synthetic": ROOT / "examples" / "synthetic-joint.yaml",
}
SCHEMA = "bml.strategy_grid/1"
POLL_S = 2.0
# paths that differ between runs of one grid by construction, never "settings"
RUN_IDENTITY = ("name", "group", "tags", "seed")


class Usage(Exception):
    """Invalid arguments: the message names the option and the fix (exit 2)."""


@dataclass
class Options:
    strategies: list[str]
    datasets: list[str]
    seeds: list[int]
    epochs: int | None
    workers: int
    home: Path | None
    broker: str
    markdown: Path | None
    json: Path | None
    timeout_s: float


# --------------------------------------------------------------------------- arguments


def registry() -> list[str]:
    """Every discovered strategy, in `bml strategies` order (built-ins, then plug-ins)."""
    from bml_core.strategies.spec import all_specs

    return [s.name for s in all_specs()]


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise Usage(f"--{what}: give at least one name; known: {', '.join(known)}")
    for name in names:
        if name not in known:
            raise Usage(f"--{what}: unknown {what[:-1]} {name!r}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))


def parse_seeds(text: str) -> list[int]:
    """`0-2` -> [0, 1, 2]; `0,3` -> [0, 3]; `0-1,4` -> [0, 1, 4] (bml_core.seeds' syntax and cap)."""
    from bml_core.seeds import SeedError
    from bml_core.seeds import parse_seeds as parse

    try:
        return parse(text)
    except SeedError as exc:
        raise Usage(f"--seeds: {exc}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own errors: exit 2 too, one line
        raise Usage(message)


def parse_args(argv: Sequence[str] | None) -> Options:
    ap = _Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategies", help="comma-separated (default: every registered strategy)")
    ap.add_argument("--datasets", default=",".join(DATASETS), help="mfeat,synthetic (default both)")
    ap.add_argument("--seeds", default="0-2", help="a range 0-2 or a list 0,1,2 (default 0-2)")
    ap.add_argument(
        "--epochs", type=int, default=None, help="epochs of every run (default: each example config's own)"
    )
    ap.add_argument("--workers", type=int, default=2, help="worker processes, one run each at a time")
    ap.add_argument("--home", type=Path, help="BML_HOME to keep the store in (default: a temporary one)")
    ap.add_argument("--broker", default="embedded", help="embedded (default) or a redis:// URL")
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    ap.add_argument("--json", type=Path, help="write every number to this file")
    ap.add_argument("--timeout-s", type=float, default=3600.0, help="give up waiting after this long")
    a = ap.parse_args(argv)
    known = registry()
    strategies = _names(a.strategies, known, "strategies") if a.strategies else known
    if JOINT not in strategies:
        strategies = [JOINT, *strategies]  # the baseline of every comparison
    if a.epochs is not None and not 1 <= a.epochs <= 100_000:
        raise Usage(f"--epochs {a.epochs}: give a whole number from 1 to 100000")
    if not 1 <= a.workers <= 64:
        raise Usage(f"--workers {a.workers}: give a whole number from 1 to 64")
    if a.broker != "embedded" and not a.broker.startswith(("redis://", "rediss://")):
        raise Usage(f"--broker {a.broker!r}: use embedded or a redis:// URL")
    if not a.timeout_s > 0:
        raise Usage(f"--timeout-s {a.timeout_s}: give a positive number of seconds")
    return Options(
        strategies=strategies,
        datasets=_names(a.datasets, list(DATASETS), "datasets"),
        seeds=parse_seeds(a.seeds),
        epochs=a.epochs,
        workers=a.workers,
        home=a.home,
        broker=a.broker,
        markdown=a.markdown,
        json=a.json,
        timeout_s=a.timeout_s,
    )


# --------------------------------------------------------------------------- configs


@dataclass
class Plan:
    """One (dataset, strategy): its validated config (seed 0) or why it cannot run."""

    dataset: str
    strategy: str
    raw: dict[str, Any] | None
    error: str | None = None


def base_config(dataset: str, epochs: int | None) -> dict[str, Any]:
    """The dataset's example config, epochs set when given, no strategy (joint training)."""
    from bml_core.config import read_config_file

    raw = read_config_file(DATASETS[dataset])
    raw["strategies"] = []
    if epochs is not None:
        raw.setdefault("train", {})["epochs"] = epochs
    return raw


def plan(dataset: str, strategy: str, epochs: int | None) -> Plan:
    """The run config of one strategy: the base, the strategy, what its spec says it needs
    (capabilities, epoch_fit), validated; a config error is kept as the reason it is not run."""
    from bml_core.config import ConfigError, validate_config
    from bml_core.strategies.spec import epoch_fits, get_spec

    raw = base_config(dataset, epochs)
    if strategy != JOINT:
        raw["strategies"] = [{"name": strategy}]
        spec = get_spec(strategy)
        if spec is not None and spec.has("needs_shared_head"):
            raw.setdefault("model", {})["head"] = "shared"
    try:
        cfg = validate_config(raw)
        for entry, fit in zip(raw["strategies"], epoch_fits(cfg), strict=True):
            entry.update(fit)
        validate_config(raw)
    except ConfigError as exc:
        return Plan(dataset, strategy, None, "; ".join(f"{p}: {m}" for p, m in exc.errors))
    return Plan(dataset, strategy, raw)


# --------------------------------------------------------------------------- runs


def submit(
    engine: Any, plans: Sequence[Plan], seeds: Sequence[int], stamp: str
) -> tuple[dict[str, str], list[int]]:
    """One group per dataset (`strategy-grid-DATASET-STAMP`), runs seed by seed; returns
    {dataset: group} and the run ids."""
    from bml_core.config import validate_config
    from services import actions as client

    groups: dict[str, str] = {}
    ids: list[int] = []
    for dataset in dict.fromkeys(p.dataset for p in plans):
        group = groups[dataset] = f"strategy-grid-{dataset}-{stamp}"
        configs = [
            validate_config({**p.raw, "seed": seed, "name": f"{p.strategy} s{seed}", "group": group})
            for seed in seeds
            for p in plans
            if p.dataset == dataset and p.raw is not None
        ]
        _, new = client.submit_group(
            configs, name=group, spec={"bench": "strategy_grid", "seeds": list(seeds)}, engine=engine
        )
        ids.extend(new)
    return groups, ids


def wait(c: Cluster, ids: Sequence[int], timeout_s: float) -> bool:
    """Poll the store until every run has ended (True) or the timeout passes (False);
    RuntimeError when every worker has exited."""
    import db

    engine = c.engine
    t0 = time.monotonic()
    last = ""
    while True:
        runs, _ = db.get_runs(engine, ids)
        ended = [r for r in runs if r.status in db.TERMINAL_STATUSES]
        failed = sum(r.status != "succeeded" for r in ended)
        line = f"{len(ended)}/{len(runs)} runs ended ({failed} not succeeded)"
        if line != last:
            print(f"[{time.monotonic() - t0:6.0f} s] {line}", flush=True)
            last = line
        if len(ended) == len(runs):
            return True
        if time.monotonic() - t0 > timeout_s:
            return False
        if not c.alive():
            raise RuntimeError("every worker has exited; see the worker logs under BML_HOME/logs")
        time.sleep(POLL_S)


# --------------------------------------------------------------------------- results


def settings(config: Mapping[str, Any], joint_config: Mapping[str, Any] | None) -> list[str]:
    """What a run sets beyond joint training's config of the same dataset: config paths that
    differ from it (the strategy list aside), and strategy parameters away from their
    defaults (`gblending.super_epoch: 6 (default 10)`)."""
    from bml_core.compare.grouping import config_paths, show_value
    from bml_core.strategies.spec import get_spec

    out: list[str] = []
    names = {s.get("name") for s in config.get("strategies") or [] if isinstance(s, Mapping)}
    if joint_config is not None:
        mine, base = config_paths(config), config_paths(joint_config)
        for path in sorted(set(mine) | set(base)):
            head = path.split(".")[0]
            if head in RUN_IDENTITY or head == "strategies" or head in names:
                continue
            if mine.get(path) != base.get(path):
                out.append(f"{path}: {show_value(mine.get(path))}")
    for entry in config.get("strategies") or []:
        spec = get_spec(entry.get("name", "")) if isinstance(entry, Mapping) else None
        if spec is None:
            continue
        defaults = {p["name"]: p["default"] for p in spec.parameters()}
        for key, value in entry.items():
            if key != "name" and key in defaults and value != defaults[key]:
                out.append(f"{spec.name}.{key}: {show_value(value)} (default {show_value(defaults[key])})")
    return out


def _advisories(config: Mapping[str, Any]) -> list[str]:
    """The warnings the stored config raises (bml_core.config.advisories), e.g. a period
    that epoch_fit could not make fit; [] when it no longer validates here."""
    from bml_core.config import ConfigError, advisories, validate_config

    try:
        return advisories(validate_config(dict(config), path_rules=False))
    except ConfigError:
        return []


def _describe(d: Any) -> dict[str, Any]:
    """A bml_core.compare.stats.Describe as a dict (collect() turns NaN into None)."""
    return {
        "n": d.n,
        "mean": d.mean,
        "std": d.std,
        "ci_low": d.ci_low,
        "ci_high": d.ci_high,
    }


def collect(engine: Any, groups: Mapping[str, str]) -> dict[str, Any]:
    """Per dataset, from the store only: every strategy's pooled seeds (bml_core.compare),
    the settings it ran with, the step-time ratio to joint, and the runs not pooled."""
    import db
    from bml_core.compare import group_runs, results
    from bml_core.compare.grouping import STRATEGIES, strategy_label
    from bml_core.compare.stats import diff_interval
    from bml_core.finitejson import finite_json

    out: dict[str, Any] = {}
    for dataset, group in groups.items():
        runs = db.runs_for_report(engine, [group]).runs
        grouping = group_runs(runs, by=[STRATEGIES])
        res = results(grouping)
        joint_rows = [r for r in res.rows if r.strategy == JOINT and r.n]
        joint = joint_rows[0] if joint_rows else None
        joint_label = joint.label if joint else None
        joint_step = joint.metrics["train.step_ms"].mean if joint else math.nan
        joint_wall = joint.metrics["wall_s"].mean if joint else math.nan
        joint_config = next(
            (r.config for r in runs if strategy_label(r.config.get(STRATEGIES)) == JOINT), None
        )
        rows = []
        for row in res.rows:
            first = next(r for r in runs if strategy_label(r.config.get(STRATEGIES)) == row.strategy)
            step, wall = row.metrics["train.step_ms"].mean, row.metrics["wall_s"].mean
            vs = row.vs_baseline if res.baseline == joint_label else None
            lo, hi = diff_interval(vs) if vs is not None else (math.nan, math.nan)
            rows.append(
                {
                    "strategy": row.strategy,
                    "n": row.n,
                    "seeds": row.seeds,
                    "run_ids": row.run_ids,
                    "settings": settings(first.config, joint_config),
                    "advisories": _advisories(first.config),
                    "test_acc": _describe(row.metrics["test.acc"]),
                    "test_acc_per_modality": {
                        m: _describe(row.metrics[f"test.acc.{m}"]) for m in res.modalities
                    },
                    "imbalance_degree": _describe(row.metrics["test.imbalance_degree"]),
                    "step_ms": _describe(row.metrics["train.step_ms"]),
                    "step_ratio_to_joint": step / joint_step if joint else None,
                    "wall_s": _describe(row.metrics["wall_s"]),
                    "wall_ratio_to_joint": wall / joint_wall if joint else None,
                    "vs_joint": None
                    if vs is None
                    else {
                        "test": vs.test,
                        "diff": vs.diff,
                        "diff_ci": [lo, hi],
                        "p": vs.p,
                        "p_holm": vs.p_holm,
                        "verdict": vs.verdict,
                        "note": vs.note,
                    },
                    "per_run": {str(k): dict(d) for k, d in row.per_run.items()},
                }
            )
        out[dataset] = {
            "group": group,
            "modalities": res.modalities,
            "baseline": res.baseline if res.baseline == joint_label else None,
            "joint_config": joint_config,
            "rows": rows,
            "not_pooled": [
                {**r.to_dict(), "strategy": strategy_label(r.record.config.get(STRATEGIES))}
                for r in grouping.excluded
            ],
        }
    return finite_json(out)  # NaN and inf as null


def machine() -> str:
    from store_common import cpu_model

    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = "?"
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), no GPU used (workers run with "
        f"CUDA_VISIBLE_DEVICES empty), Python {platform.python_version()}, torch {torch}"
    )


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- main


def run_grid(opts: Options, argv: Sequence[str]) -> tuple[dict[str, Any], bool]:
    plans = [plan(d, s, opts.epochs) for d in opts.datasets for s in opts.strategies]
    runnable = [p for p in plans if p.raw is not None]
    for p in plans:
        if p.error:
            print(f"not run: {p.dataset} {p.strategy}: {p.error}", file=sys.stderr)
    epochs = {d: base_config(d, opts.epochs).get("train", {}).get("epochs") for d in opts.datasets}
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    started = datetime.now(UTC)
    load_start = _load()
    with contextlib.ExitStack() as stack:
        home = opts.home or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bml-grid-")))
        print(
            f"store and broker under {home}; {opts.workers} worker(s); {len(runnable) * len(opts.seeds)} runs"
        )
        with cluster(home.resolve(), opts.broker, opts.workers) as c:
            t0 = time.monotonic()
            groups, ids = submit(c.engine, runnable, opts.seeds, stamp)
            finished = wait(c, ids, opts.timeout_s)
            grid_wall = time.monotonic() - t0
            load_end = _load()
            datasets = collect(c.engine, groups)
    doc = {
        "schema": SCHEMA,
        "meta": {
            "command": " ".join(["python bench/strategy_grid.py", *map(shlex.quote, argv)]),
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "grid_wall_s": grid_wall,
            "runs": len(ids),
            "workers": opts.workers,
            "broker": "embedded" if opts.broker == "embedded" else "redis",
            "load_start": load_start,
            "load_end": load_end,
            "machine": machine(),
            "seeds": ",".join(map(str, opts.seeds)),
            "epochs": ", ".join(f"{d} {e}" for d, e in epochs.items()),
            "finished": finished,
        },
        "datasets": datasets,
        "not_run": [
            {"dataset": p.dataset, "strategy": p.strategy, "error": p.error} for p in plans if p.error
        ],
    }
    return doc, finished


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_args(args)
    except Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    doc, finished = run_grid(opts, args)
    text = markdown(doc)
    print(text)
    if opts.markdown:
        opts.markdown.parent.mkdir(parents=True, exist_ok=True)
        opts.markdown.write_text(text, encoding="utf-8")
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    not_pooled = sum(len(b["not_pooled"]) for b in doc["datasets"].values())
    if not finished:
        print(
            f"error: runs still going after {opts.timeout_s:g} s (listed above as not pooled)",
            file=sys.stderr,
        )
    elif not_pooled:
        print(f"error: {not_pooled} run(s) did not succeed (listed above)", file=sys.stderr)
    return 0 if finished and not not_pooled and not doc["not_run"] else 1


if __name__ == "__main__":
    sys.exit(main())
