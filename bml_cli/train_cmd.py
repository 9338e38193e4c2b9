"""`bml train`: train in this process (no broker, no store needed)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import typer

from bml_cli.common import (
    EXIT_FAILURE,
    bml_home,
    check_webhook_or_exit,
    fail,
    invalid_input_exits,
    overrides_option,
    read_run_config,
)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def default_run_dir(name: str, seed: int, resume: bool) -> Path:
    """BML_HOME/runs/<name>-s<seed>[-N]: a new directory, or with --resume the newest one."""
    root = bml_home() / "runs"
    base = f"{_slug(name)}-s{seed}"
    candidates = [root / base] + [root / f"{base}-{i}" for i in range(2, 1000)]
    existing = [p for p in candidates if p.exists()]
    if resume:
        return existing[-1] if existing else candidates[0]
    return next(p for p in candidates if not p.exists())


def _print_summary(summary: dict[str, Any]) -> None:
    test = summary.get("test") or {}
    per = " ".join(f"{m}={a:.3f}" for m, a in (test.get("acc_per_modality") or {}).items())
    typer.echo(
        f"test acc {test.get('acc', float('nan')):.4f} ({per}) | imbalance degree "
        f"{test.get('imbalance_degree', float('nan')):.3f} | best epoch {summary.get('best_epoch')} | "
        f"{summary['train']['steps']} steps in {summary['train']['seconds']:.1f}s"
    )
    alerts = summary.get("alerts") or []
    if alerts:
        typer.echo(f"{len(alerts)} alert(s):")
        for a in alerts:
            typer.echo(
                f"  [{a.get('severity')}] step {a.get('step')} {a.get('detector')}: {a.get('message')}"
            )


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: Path = typer.Argument(None, help="run config (YAML or JSON); defaults for every key"),
        set_: list[str] = overrides_option(),
        summary_json: Path = typer.Option(None, "--summary-json", help="write the summary JSON here"),
        out: Path = typer.Option(
            None, "--out", help="run directory (checkpoints, metrics.jsonl, summary.json)"
        ),
        resume: bool = typer.Option(
            False, "--resume", help="continue from the run directory's last checkpoint"
        ),
        device: str = typer.Option(
            None, "--device", help="cpu | cuda | cuda:N | auto (overrides train.device)"
        ),
        preset: str = typer.Option(None, "--preset", help="start from a paper preset (see examples/)"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
        to_db: bool = typer.Option(
            False, "--db", help="also stream the run into the store (BML_DATABASE_URL); prints its run id"
        ),
    ) -> None:
        """Train one run in this process; exit 0 ok, 2 invalid config or data, 1 failure."""
        from bml_core.data import DatasetError, build_dataset
        from bml_core.sinks import JsonlSink, MetricSink, ProgressSink
        from bml_core.trainer import Trainer

        check_webhook_or_exit()
        if out is not None and out.exists() and not out.is_dir():
            raise fail(f"error: --out {out} is a file; give a folder for the run's files")
        with invalid_input_exits():
            cfg = read_run_config(config, set_, preset, device)
            bundle = build_dataset(cfg.dataset)
            run_dir = out or default_run_dir(cfg.name, cfg.seed, resume)
            if not resume and (run_dir / "last.pt").exists():
                raise typer.BadParameter(f"{run_dir} already holds a run; pass --resume or another --out")
            trainer = Trainer(cfg, bundle, run_dir=run_dir, resume=resume)

        stop = {"requested": False}

        def _request_stop(signum: int, frame: object) -> None:
            stop["requested"] = True

        trainer.stop_requested = lambda: stop["requested"]
        signal.signal(signal.SIGTERM, _request_stop)
        signal.signal(signal.SIGINT, _request_stop)

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        sinks: list[MetricSink] = [JsonlSink(run_dir / "metrics.jsonl")]
        if progress:
            sinks.append(ProgressSink())
        if to_db:
            from bml_cli.store_cmd import open_run_sink

            sinks.append(open_run_sink(cfg))
        from bml_core.alerts.webhook import webhook_sinks

        sinks += webhook_sinks({"name": cfg.name})
        for s in sinks:
            trainer.sink.sinks.append(s)
        try:
            summary = trainer.fit()
        except DatasetError as exc:  # a bad file met while training (also from DataLoader workers)
            last_line = str(exc).strip().splitlines()[-1].split("DatasetError: ", 1)[-1]
            raise fail(f"error: invalid dataset:\n  {exc.field}: {last_line}") from None
        except Exception as exc:  # noqa: BLE001 - reported, exit 1
            raise fail(f"error: training failed: {type(exc).__name__}: {exc}", EXIT_FAILURE) from None
        status = summary["run"]["status"]
        if status != "succeeded":
            raise fail(
                f"stopped ({status}); continue with: bml train ... --out {run_dir} --resume", EXIT_FAILURE
            )
        text = json.dumps(summary, indent=2)
        (run_dir / "summary.json").write_text(text)
        if summary_json:
            summary_json.parent.mkdir(parents=True, exist_ok=True)
            summary_json.write_text(text)
        _print_summary(summary)
        typer.echo(f"run directory: {run_dir}")
