"""The HTML report in Chromium with the network off: every chart is drawn by the
embedded Plotly, no console error, no request leaves the file; a screenshot for the docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from bml_cli.main import app
from tests.helpers.browser import launch_browser
from tests.helpers.report_runs import add_run

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def test_html_report_draws_offline_without_errors(engine: Engine, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    for strategy, accs in {
        "joint": (0.60, 0.62, 0.61),
        "ogm_ge": (0.70, 0.71, 0.73),
        "opm": (0.61, 0.64, 0.60),
    }.items():
        for seed, acc in enumerate(accs):
            add_run(engine, [] if strategy == "joint" else [strategy], seed, acc, dataset="cremad", steps=120)
    add_run(engine, ["opm"], 3, None, status="running", dataset="cremad")
    target = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "-g", "study", "-o", str(target), "--title", "CREMA-D study"])
    assert result.exit_code == 0, result.stderr

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = launch_browser(p)
        context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None
        )
        page.goto(target.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=30_000)
        drawn = page.evaluate(
            """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
                el => [el.layout.title.text, el._fullData.length, el.querySelectorAll('.scatterlayer .trace').length])"""
        )
        assert len(drawn) == 6  # accuracy with intervals, 2 x rho, 3 x validation accuracy
        for title, n_traces, n_drawn in drawn:
            assert n_traces >= 1 and n_drawn >= 1, title
        assert any(t.startswith("Discrepancy ratio") for t, _, _ in drawn)
        text = page.inner_text("body")
        assert "Published numbers (cremad)" in text and "still running" in text and "better" in text
        shots = ROOT / "docs" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert requests == []
