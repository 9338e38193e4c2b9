"""The dashboard's charts (Live and Compare): a small Streamlit component (st.components.v2,
rendered in the page itself, no iframe) that keeps one Plotly plot mounted across the
page's reruns and updates it with `Plotly.react`, so `uirevision` keeps the user's zoom and
legend choices.

Why not st.plotly_chart:
- it derives the element's identity from the figure, so a figure with new points is a new
  element; the plot is torn down and drawn afresh every refresh and any zoom is lost;
- it loads Streamlit's bundle of the full plotly.js (4.7 MB, every trace type, maps
  included), and evaluating that bundle alone took 0.8 s of the browser's main thread on a
  first visit of Compare (docs/benchmarks.md). Our charts are lines and filled bands only,
  so they use plotly.js's official "basic" distribution (scatter, bar, pie: 1.2 MB), shipped
  in `app/static/` (MIT licence; `make vendor-plotly` refreshes it from npm) and served by
  the app server's static file route (`server.enableStaticServing`, see services/processes.py).
  Nothing is downloaded from elsewhere at run time. Where that file is missing (a trimmed
  install), the component falls back to the plotly.js Streamlit ships.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import streamlit as st

PLOTLY_BASIC_VERSION = "4.1.1"  # the plotly.js of the installed Python plotly (7.1)
PLOTLY_BASIC_SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"
PLOTLY_BASIC_FILE = Path(__file__).resolve().parent / "static" / "plotly-basic.min.js"
CHART_CLASS = "bml-chart"

# One promise per page for plotly.js, whoever asks first (the preloader or a chart):
# the basic bundle is a classic script (it sets window.Plotly); Streamlit's own bundle, the
# fallback, is an ES module chunk.
LOAD_PLOTLY_JS = """
function loadPlotly(source) {
  if (window.Plotly) return Promise.resolve();
  if (!source || !source.url) return Promise.reject(new Error('no plotly.js URL'));
  if (!window.__bmlPlotly) {
    const href = new URL(source.url, window.location.origin).href;
    window.__bmlPlotly = source.kind === 'module'
      ? import(href)
      : new Promise((resolve, reject) => {
          const script = document.createElement('script');
          script.src = href;
          script.async = true;
          script.onload = resolve;
          script.onerror = () => reject(new Error('plotly.js did not load from ' + href));
          document.head.appendChild(script);
        });
    window.__bmlPlotly.catch(() => { window.__bmlPlotly = undefined; });
  }
  return window.__bmlPlotly;
}
"""

CHART_JS = (
    LOAD_PLOTLY_JS
    + """
export default async function (component) {
  const { data, parentElement } = component;
  try {
    await loadPlotly(data.plotly);
  } catch (err) {
    console.error('bml chart: plotly.js not loaded', err);
  }
  let plot = parentElement.querySelector('div.CHART_CLASS');
  if (!plot) {
    plot = document.createElement('div');
    plot.className = 'CHART_CLASS';
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
""".replace("CHART_CLASS", CHART_CLASS)
)

PRELOAD_JS = (
    LOAD_PLOTLY_JS
    + """
export default function (component) {
  loadPlotly(component.data && component.data.plotly).catch(() => {});
}
"""
)

_renderer = st.components.v2.component("bml_chart", js=CHART_JS, isolate_styles=False)
_preloader = st.components.v2.component("bml_plotly_preload", js=PRELOAD_JS, isolate_styles=False)

# Layout keys that make the plain Plotly figure look like the rest of the (Streamlit) page.
PAGE_STYLE: dict[str, Any] = {
    "font": {"family": '"Source Sans", "Source Sans Pro", sans-serif', "size": 13, "color": "#31333f"},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "xaxis": {"gridcolor": "#e6e9ef", "zeroline": False},
    "autosize": True,
}


def _url(path: str) -> str:
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/{path}" if base else f"/{path}"


@lru_cache(maxsize=1)
def plotly_source() -> dict[str, str] | None:
    """Where the browser loads plotly.js from: the shipped basic bundle on the app's static
    route, else the chunk of Streamlit's own Plotly chart (its file name carries a content
    hash, so it is looked up in the installed package)."""
    if PLOTLY_BASIC_FILE.is_file() and st.get_option("server.enableStaticServing"):
        return {"url": _url(f"app/static/{PLOTLY_BASIC_FILE.name}"), "kind": "script"}
    static_js = Path(st.__file__).resolve().parent / "static" / "static" / "js"
    found = sorted(static_js.glob("PlotlyChart.*.js"))
    if not found:
        return None
    return {"url": _url(f"static/js/{found[0].name}"), "kind": "module"}


def styled(figure: dict[str, Any]) -> dict[str, Any]:
    layout = {**PAGE_STYLE, **figure["layout"]}
    layout["xaxis"] = {**PAGE_STYLE["xaxis"], **figure["layout"].get("xaxis", {})}
    layout["yaxis"] = {"gridcolor": "#e6e9ef", "zeroline": False, **figure["layout"].get("yaxis", {})}
    return {"data": figure["data"], "layout": layout}


def chart(figure: dict[str, Any], key: str, config: dict[str, Any] | None = None) -> None:
    """Draw (or update in place) the figure (plain data and layout dicts) under a stable key."""
    _renderer(
        data={
            "figure": styled(figure),
            "config": {"responsive": True, **(config or {})},
            "plotly": plotly_source(),
        },
        key=key,
    )


def preload_plotly() -> None:
    """Start fetching and evaluating plotly.js in the browser now, while the page's script
    is still reading the store (a chart page calls it before anything else)."""
    _preloader(data={"plotly": plotly_source()}, key="plotly-preload")
