"""The `bml` command line: a thin typer front over bml_core, db and worker (CONTRACT.md)."""

from __future__ import annotations

import typer

from bml_cli import dashboard_cmd, data_cmd, report_cmd, store_cmd, train_cmd, worker_cmd

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="BML Studio: train, launch, watch and compare balanced multimodal learning runs.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """BML Studio command line."""


train_cmd.register(app)
store_cmd.register(app)
data_cmd.register(app)
worker_cmd.register(app)
dashboard_cmd.register(app)
report_cmd.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
