"""The charts' plotly.js (app/plotly_chart.py): the shipped "basic" bundle is the pinned,
unmodified file, matches the plotly.js of the installed Python plotly, and the dashboard's
command line serves it; without it the charts fall back to Streamlit's bundle."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import plotly.offline
import pytest
import streamlit as st

from app import plotly_chart
from services.processes import dashboard_command


def test_the_shipped_bundle_is_the_pinned_file_of_the_installed_plotly_version() -> None:
    data = plotly_chart.PLOTLY_BASIC_FILE.read_bytes()
    header = re.search(rb"plotly\.js \(basic - minified\) v([0-9.]+)", data[:300])
    assert header is not None, "app/static/plotly-basic.min.js is not plotly.js's basic distribution"
    assert header.group(1).decode() == plotly_chart.PLOTLY_BASIC_VERSION
    assert hashlib.sha256(data).hexdigest() == plotly_chart.PLOTLY_BASIC_SHA256, "run `make vendor-plotly`"
    # the figures are built for the plotly.js the Python package ships (7.x: 4.1.1)
    assert plotly.offline.get_plotlyjs_version() == plotly_chart.PLOTLY_BASIC_VERSION
    assert (
        (plotly_chart.PLOTLY_BASIC_FILE.parent / "plotly-basic.LICENSE.txt")
        .read_text()
        .startswith("MIT License")
    )
    assert len(data) < 1.5e6  # the point of it: Streamlit's full bundle is 4.7 MB


def test_the_dashboard_serves_app_static() -> None:
    cmd = dashboard_command(8599, "127.0.0.1")
    assert cmd[cmd.index("--server.enableStaticServing") + 1] == "true"


@pytest.fixture
def fresh_source() -> object:
    plotly_chart.plotly_source.cache_clear()
    yield
    plotly_chart.plotly_source.cache_clear()
    st.config.set_option("server.enableStaticServing", False)


def test_source_is_the_static_bundle_when_served_else_streamlits(
    fresh_source: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    st.config.set_option("server.enableStaticServing", True)
    assert plotly_chart.plotly_source() == {"url": "/app/static/plotly-basic.min.js", "kind": "script"}
    plotly_chart.plotly_source.cache_clear()
    monkeypatch.setattr(plotly_chart, "PLOTLY_BASIC_FILE", tmp_path / "missing.js")
    fallback = plotly_chart.plotly_source()
    assert fallback is not None and fallback["kind"] == "module"
    assert re.fullmatch(r"/static/js/PlotlyChart\.[\w-]+\.js", fallback["url"])
