"""`bml strategies [--json]`: the strategy catalogue (built-ins and plug-ins) from the specs,
without importing torch."""

from __future__ import annotations

import json
from typing import Any

import typer


def _bounds(bounds: dict[str, Any]) -> str:
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "len>=", "max_length": "len<="}
    return ", ".join(f"{signs[k]} {v}" for k, v in bounds.items())


def _text(spec: dict[str, Any]) -> list[str]:
    lines = [f"{spec['name']}  [{spec['cost']}]  {spec['description']}"]
    if spec["reference"]:
        lines.append(f"  reference: {spec['reference']}")
    cost = spec["cost_description"] + (f"; {spec['cost_note']}" if spec["cost_note"] else "")
    lines.append(f"  cost: {cost}")
    if spec["source"] != "built-in":
        lines.append(f"  from: {spec['source']}")
    for p in spec["parameters"]:
        kind = "|".join(map(str, p["choices"])) if p["choices"] else p["type"]
        bounds = f" ({_bounds(p['bounds'])})" if p["bounds"] else ""
        lines.append(f"  {p['name']:<14} {kind}{bounds}, default {p['default']}: {p['description']}")
    for m in spec["metrics"]:
        series = f"{m['key']}/<modality>" if m["per_modality"] else m["key"]
        lines.append(f"  metric {series}: {m['title']}")
    return lines


def register(app: typer.Typer) -> None:
    @app.command()
    def strategies(
        as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    ) -> None:
        """List every strategy (built-in and plug-ins): parameters, reference, cost, metrics."""
        from bml_core.strategies.spec import all_specs, plugin_errors

        specs = [s.as_dict() for s in all_specs()]
        errors = [{"source": e.source, "message": e.message} for e in plugin_errors()]
        if as_json:
            typer.echo(json.dumps({"strategies": specs, "plugin_errors": errors}, indent=2, default=str))
        else:
            for spec in specs:
                typer.echo("\n".join(_text(spec)) + "\n")
        for e in errors:
            typer.echo(f"warning: strategy plug-in not loaded: {e['source']}: {e['message']}", err=True)
