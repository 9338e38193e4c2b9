"""The Live page's charts: a small Streamlit component (st.components.v2, rendered in the
page itself, no iframe) that keeps one Plotly plot mounted across the page's refreshes and
updates it with `Plotly.react`, so `uirevision` keeps the user's zoom and legend choices.

Why not st.plotly_chart: it derives the element's identity from the figure, so a figure
with new points is a new element; the plot is torn down and drawn afresh every refresh
and any zoom is lost. The plotly.js used is the one Streamlit ships for st.plotly_chart
(the same file, loaded from the app server; nothing is downloaded from elsewhere)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import streamlit as st

LIVE_CHART_JS = """
export default async function (component) {
  const { data, parentElement } = component;
  if (!window.Plotly && data.plotly_url) {
    try {
      await import(new URL(data.plotly_url, window.location.origin).href);
    } catch (err) {
      console.error('bml live chart: plotly.js not loaded', err);
    }
  }
  let plot = parentElement.querySelector('div.bml-live-chart');
  if (!plot) {
    plot = document.createElement('div');
    plot.className = 'bml-live-chart';
    plot.style.width = '100%';
    parentElement.appendChild(plot);
  }
  if (!window.Plotly) {
    plot.textContent = 'This chart needs plotly.js, which the app server did not provide.';
    return;
  }
  plot.dataset.updates = String(Number(plot.dataset.updates || 0) + 1);
  await window.Plotly.react(plot, data.figure.data, data.figure.layout, data.config);
}
"""

PRELOAD_JS = """
export default function (component) {
  const url = component.data && component.data.plotly_url;
  if (!window.Plotly && url) {
    import(new URL(url, window.location.origin).href).catch(() => {});
  }
}
"""

_renderer = st.components.v2.component("bml_live_chart", js=LIVE_CHART_JS, isolate_styles=False)
_preloader = st.components.v2.component("bml_plotly_preload", js=PRELOAD_JS, isolate_styles=False)

# Layout keys that make the plain Plotly figure look like the rest of the (Streamlit) page.
PAGE_STYLE: dict[str, Any] = {
    "font": {"family": '"Source Sans", "Source Sans Pro", sans-serif', "size": 13, "color": "#31333f"},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "xaxis": {"gridcolor": "#e6e9ef", "zeroline": False},
    "autosize": True,
}


@lru_cache(maxsize=1)
def plotly_module_url() -> str | None:
    """Where the app server serves the plotly.js bundle of Streamlit's own Plotly chart
    (its file name carries a content hash, so it is looked up in the installed package)."""
    static_js = Path(st.__file__).resolve().parent / "static" / "static" / "js"
    found = sorted(static_js.glob("PlotlyChart.*.js"))
    if not found:
        return None
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base}" if base else ""
    return f"{prefix}/static/js/{found[0].name}"


def styled(figure: dict[str, Any]) -> dict[str, Any]:
    layout = {**PAGE_STYLE, **figure["layout"]}
    layout["xaxis"] = {**PAGE_STYLE["xaxis"], **figure["layout"].get("xaxis", {})}
    layout["yaxis"] = {"gridcolor": "#e6e9ef", "zeroline": False, **figure["layout"].get("yaxis", {})}
    return {"data": figure["data"], "layout": layout}


def live_chart(figure: dict[str, Any], key: str, config: dict[str, Any] | None = None) -> None:
    """Draw (or update in place) the figure under a stable key."""
    _renderer(
        data={
            "figure": styled(figure),
            "config": {"responsive": True, **(config or {})},
            "plotly_url": plotly_module_url(),
        },
        key=key,
    )


def preload_plotly() -> None:
    """Start fetching and evaluating plotly.js in the browser now, while the page's script
    is still reading the store (a chart page calls it before anything else)."""
    _preloader(data={"plotly_url": plotly_module_url()}, key="plotly-preload")
