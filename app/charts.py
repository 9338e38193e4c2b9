"""Plotly figures for the dashboard, built from plain lists (the store's downsampled
buckets). `uirevision` keeps the user's zoom and legend choices across refreshes; the
modebar's camera button saves a PNG in the browser (no server-side renderer)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

chart_height_px = 320
# Colours per trace position (Plotly's default qualitative palette), so a band shares its line's colour.
PALETTE = (
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
)


@dataclass
class Trace:
    """One line (optionally with a shaded band from `lower` to `upper`)."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    lower: Sequence[float] | None = None
    upper: Sequence[float] | None = None
    markers: bool = False
    dash: str | None = None
    group: str | None = None
    meta: dict[str, object] = field(default_factory=dict)
    colour: str | None = None  # default: the palette colour of the trace's position
    width: float = 1.6
    showlegend: bool = True


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _clean(values: Sequence[float]) -> list[float | None]:
    return [None if (v is None or (isinstance(v, float) and not math.isfinite(v))) else v for v in values]


def line_figure_dict(
    traces: Sequence[Trace],
    *,
    title: str,
    y_title: str = "",
    uirevision: str | int = "keep",
    hline: float | None = None,
    height_px: int = chart_height_px,
) -> dict[str, object]:
    """A Plotly figure as plain data: lines (and bands) sharing one x axis."""
    data: list[dict[str, object]] = []
    for i, trace in enumerate(traces):
        colour = trace.colour or PALETTE[i % len(PALETTE)]
        group = trace.group or trace.name
        if trace.lower is not None and trace.upper is not None:
            data.append(
                {
                    "type": "scatter",
                    "x": list(trace.x) + list(trace.x)[::-1],
                    "y": _clean(list(trace.upper)) + _clean(list(trace.lower))[::-1],
                    "fill": "toself",
                    "fillcolor": _rgba(colour, 0.18),
                    "line": {"width": 0},
                    "hoverinfo": "skip",
                    "showlegend": False,
                    "name": f"{trace.name} band",
                    "legendgroup": group,
                }
            )
        line: dict[str, object] = {"color": colour, "width": trace.width}
        if trace.dash:
            line["dash"] = trace.dash
        extra: dict[str, object] = {} if trace.showlegend else {"showlegend": False}
        data.append(
            {
                **extra,
                "type": "scatter",
                "x": list(trace.x),
                "y": _clean(trace.y),
                "name": trace.name,
                "mode": "lines+markers" if trace.markers else "lines",
                "line": line,
                "marker": {"size": 5},
                "legendgroup": group,
                "connectgaps": False,
            }
        )
    shapes = []
    if hline is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": hline,
                "y1": hline,
                "line": {"dash": "dot", "color": "grey"},
                "opacity": 0.7,
            }
        )
    layout = {
        "title": {"text": title, "x": 0.0, "xanchor": "left"},
        "height": height_px,
        "margin": {"l": 10, "r": 10, "t": 36, "b": 10},
        "uirevision": uirevision,
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0.0, "xanchor": "left"},
        "xaxis": {"automargin": True},
        "yaxis": {"title": {"text": y_title}, "automargin": True},
        "hovermode": "x unified",
        "shapes": shapes,
    }
    return {"data": data, "layout": layout}


def png_config(filename: str) -> dict[str, object]:
    """Plotly config: the modebar's camera saves a PNG named after the chart."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in filename) or "chart"
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": safe, "scale": 2},
    }
