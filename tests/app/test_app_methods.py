"""The strategy catalogue in the dashboard, from the specs only (issue 9): the /methods page,
Launch's `?strategy=NAME` preselection, and the example plug-in (loaded through BML_PLUGINS)
on /methods, in the Launch form and with its own panel on Live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db
from app.views.live import data as lv
from app.widgets import widget_key
from bml_core.strategies import all_specs, discover, get_spec
from tests.helpers.apptest import chart_specs, errors_of, open_page
from tests.helpers.stored_runs import add_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
STRATEGIES_KEY = widget_key("strategies")


@pytest.fixture
def halve_dominant(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("BML_PLUGINS", "halve_dominant")
    discover(refresh=True)
    yield
    monkeypatch.delenv("BML_PLUGINS")
    discover(refresh=True)


def _links(at) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {el.proto.label: el.proto.query_string for el in at.get("page_link") if el.proto.page == "launch"}


def test_methods_page_lists_every_spec_with_parameters_cost_reference_and_a_launch_link(
    engine: Engine,
) -> None:
    at = open_page("methods")
    assert not at.exception and not errors_of(at)
    names = [s.name for s in all_specs() if s.listed]
    assert [h.value for h in at.subheader] == names
    assert _links(at) == {f"Launch {n}": f"strategy={n}" for n in names}
    text = "\n".join(m.value for m in at.markdown)
    opm = get_spec("opm")
    assert opm is not None
    assert opm.description in text and opm.reference in text and "**Cost:** `cheap`" in text
    tables = [df.value for df in at.dataframe if "parameter" in df.value.columns]
    opm_table = tables[names.index("opm")]
    row = opm_table[opm_table["parameter"] == "q_base"].iloc[0]
    assert (row["default"], row["bounds"], row["description"]) == (
        "0.5",
        "≥ 0.0, ≤ 1.0",
        "base drop probability",
    )


def test_launch_preselects_the_strategy_of_the_link(engine: Engine) -> None:
    at = open_page("launch", strategy="opm")
    assert not at.exception
    assert at.session_state[STRATEGIES_KEY] == ["opm"]
    assert any(e.label.startswith("opm parameters") for e in at.expander)
    at.multiselect(key=STRATEGIES_KEY).set_value(["opm", "ogm_ge"]).run()
    assert at.session_state[STRATEGIES_KEY] == ["opm", "ogm_ge"]  # the link does not undo edits
    unknown = open_page("launch", strategy="no_such_method")
    assert not unknown.exception and unknown.session_state[STRATEGIES_KEY] == []


def test_example_plugin_on_methods_launch_and_live(engine: Engine, halve_dominant: None) -> None:
    methods = open_page("methods")
    assert not methods.exception
    assert "halve_dominant" in [h.value for h in methods.subheader]
    assert _links(methods)["Launch halve_dominant"] == "strategy=halve_dominant"

    launch = open_page("launch", strategy="halve_dominant")
    assert not launch.exception
    picker = launch.multiselect(key=STRATEGIES_KEY)
    # issue 14: short names as choices (chips were cut), the description in the help
    assert "halve_dominant" in picker.options
    assert "Halves the dominant modality's encoder gradients (example plug-in)." in picker.help
    assert launch.session_state[STRATEGIES_KEY] == ["halve_dominant"]
    assert launch.session_state[widget_key("strategy.halve_dominant.factor")] == 0.5

    rid = add_run(engine, "hd", "g", ["halve_dominant"], steps=30, status="running")
    db.write_points(
        engine,
        rid,
        {
            f"halve_dominant/factor/{m}": [(s, 0.5 if m == "audio" else 1.0) for s in range(1, 31)]
            for m in ("audio", "visual")
        },
    )
    live = open_page("live", run=str(rid))
    assert not live.exception and not errors_of(live)
    spec = get_spec("halve_dominant")
    assert spec is not None
    family = spec.metrics[0]
    charts = {c["layout"]["title"]["text"]: c for c in chart_specs(live)}
    panel = charts[family.title]
    drawn_lines = {t["name"]: t["y"][-1] for t in panel["data"] if not (t.get("meta") or {}).get("raw")}
    assert drawn_lines == pytest.approx(
        {"audio": 0.5, "visual": 1.0}
    )  # EMA of a constant (raw drawn faintly)
    assert any(shape.get("y0") == 1.0 for shape in panel["layout"].get("shapes", []))  # reference line
    assert lv.PANELS[0].title in charts  # the common panels are still there


def test_live_draws_the_families_of_the_run_only(engine: Engine) -> None:
    rid = add_run(engine, "ogm-run", "g", ["ogm_ge"], steps=20)
    state = lv.refresh(engine, lv.LiveState(run_id=rid))
    drawn = {p.name for p in lv.panels() if lv.panel_figure(state, p) is not None}
    # issue 14: OGM's k has its own panel (never two strategies on one chart)
    assert drawn == {"ratio", "family-ogm-coef", "accuracy", "loss", "grad"}
    modulation = lv.panel_figure(state, next(p for p in lv.panels() if p.name == "family-ogm-coef"))
    assert modulation is not None and {t["name"] for t in modulation["data"]} == {"audio", "visual"}
