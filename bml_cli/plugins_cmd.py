"""`bml plugins [--json]`: every strategy, encoder, fusion head and dataset (built-in and
plug-ins) from their torch-free specs (CONTRACT.md "Plug-ins"), without importing torch."""

from __future__ import annotations

import json
from typing import Any

import typer

from bml_cli.strategies_cmd import _bounds

TITLES = {
    "strategies": "Strategies",
    "encoders": "Encoders",
    "fusions": "Fusion heads",
    "datasets": "Datasets",
}


def _lines(item: dict[str, Any]) -> list[str]:
    extra = ""
    if "ranks" in item:
        extra = (
            f"  [input ranks {', '.join(map(str, item['ranks']))}{'; lengths' if item['sequence'] else ''}]"
        )
    lines = [f"  {item['name']}{extra}  {item['description']}"]
    if item.get("source") not in ("", "built-in", None):
        package = f", package {item['package']}" if item.get("package") else ""
        lines.append(f"    from: {item['source']}{package}")
    for p in item.get("parameters", []):
        kind = "|".join(map(str, p["choices"])) if p.get("choices") else p["type"]
        bounds = f" ({_bounds(p['bounds'])})" if p.get("bounds") else ""
        lines.append(f"    {p['name']:<14} {kind}{bounds}, default {p['default']}: {p['description']}")
    return lines


def register(app: typer.Typer) -> None:
    @app.command()
    def plugins(
        as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    ) -> None:
        """List every strategy, encoder, fusion head and dataset (built-in and plug-ins)."""
        from bml_core.plugins import catalogue

        cat = catalogue()
        errors = cat.pop("errors")
        if as_json:
            typer.echo(json.dumps({**cat, "plugin_errors": errors}, indent=2, default=str))
        else:
            for kind, items in cat.items():
                typer.echo(f"{TITLES[kind]} ({len(items)})")
                for item in items:
                    typer.echo("\n".join(_lines(item)))
                typer.echo("")
        for e in errors:
            typer.echo(f"warning: plug-in not loaded: {e['source']}: {e['message']}", err=True)
