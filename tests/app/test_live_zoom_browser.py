"""The user's zoom on a Live chart survives the first alert of the run, in a real browser
(Playwright driving Debian's Chromium) against the dashboard alone, serving a store seeded
with a running run. The alert strip appears *above* the charts; before the charts' containers
were keyed, Streamlit placed them by position, so the strip remounted every chart and the
zoom was lost (the CI failure of `test_launch_ogm_ge_from_the_form_and_watch_it_live`).
Here the chart's plot element must be the same DOM node after the strip appears, still
zoomed to the range the user chose, and updated in place (it draws the alert's marker)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

import db
from app.views.live import data as lv
from tests.helpers.browser import (
    chromium_page,
    drag_zoom,
    open_page,
    serve_dashboard,
    wait_chart,
    x_axis,
)
from tests.helpers.stored_runs import add_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RATIO_TITLE = lv.PANELS[0].title

# Mark the plot element of the chart titled `prefix` (a property on the DOM node itself);
# later, whether the chart of that title is still that node, and its alert markers.
MARK_JS = """
(prefix) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const title = ((el.layout && el.layout.title && el.layout.title.text) || '').replace(/<[^>]*>/g, '');
    if (title.startsWith(prefix)) { el.__bmlMark = 'zoomed'; return true; }
  }
  return false;
}
"""
STATE_JS = """
(prefix) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const title = ((el.layout && el.layout.title && el.layout.title.text) || '').replace(/<[^>]*>/g, '');
    if (!title.startsWith(prefix)) continue;
    const markers = (el.layout.shapes || []).filter(s => String(s.name || '').startsWith('alert'));
    return {same: el.__bmlMark === 'zoomed', markers: markers.length};
  }
  return null;
}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, int]]:
    home = tmp_path_factory.mktemp("live-zoom")
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    db.upgrade(engine)
    run_id = add_run(engine, "running-ogm", "zoom", ["ogm_ge"], steps=120, status="running")
    with serve_dashboard(home) as url:
        yield url, engine, run_id
    engine.dispose()


@pytest.fixture(scope="module")
def page(served: tuple[str, Engine, int]) -> Iterator[Any]:
    with chromium_page() as pg:
        yield pg


def _alert(step: int) -> dict[str, Any]:
    return {
        "key": f"dominance:visual:{step}",
        "detector": "dominance",
        "severity": "warning",
        "modality": "visual",
        "step": step,
        "step_range": [step - 50, step],
        "evidence": {"dominant": "audio", "rho": 2.4, "window": 50},
        "advice": {"text": "try OPM", "strategies": [{"name": "opm", "q_base": 0.5}]},
        "message": f"visual under-optimised since step {step - 50}: try OPM",
    }


def test_zoom_survives_the_alert_strip_appearing_above_the_charts(
    served: tuple[str, Engine, int], page: Any
) -> None:
    url, engine, run_id = served
    open_page(page, f"{url}/live?run={run_id}")
    wait_chart(page, RATIO_TITLE, timeout_s=60)
    assert page.locator(".st-key-live-alerts").count() == 0  # no alert yet: no strip
    assert page.evaluate(MARK_JS, RATIO_TITLE)
    drag_zoom(page, RATIO_TITLE)
    zoomed = x_axis(page, RATIO_TITLE)
    assert zoomed is not None and zoomed["auto"] is False

    sink = db.DbMetricSink(engine, run_id, flush_interval_s=0.05, record_status=False)
    sink.on_alert(_alert(100))
    sink.close()
    page.wait_for_selector(".st-key-live-alerts", timeout=30_000)  # the strip, above the charts
    page.wait_for_function(  # the chart has drawn the alert's marker
        f"() => {{ const s = ({STATE_JS})({RATIO_TITLE!r}); return s && s.markers > 0; }}",
        timeout=30_000,
    )
    page.wait_for_timeout(int(3 * lv.refresh_interval_s * 1000))  # and refreshed a few times since

    state = page.evaluate(STATE_JS, RATIO_TITLE)
    assert state == {"same": True, "markers": 1}, "the chart was mounted afresh when the strip appeared"
    after = x_axis(page, RATIO_TITLE)
    assert after is not None and after["auto"] is False
    assert after["range"] == pytest.approx(zoomed["range"])
