"""Report page (`/report?group=G`, several groups, `?runs=`): the same document as `bml
report` (checked against `make_report` and the store's summaries), shown as its HTML with
downloads of the HTML and the JSON, a link back to Compare, and clear errors for bad links
and for runs that have not finished."""

from __future__ import annotations

import json
import statistics

from sqlalchemy import Engine

from app.views.report import data as report_data
from services.report import make_report
from tests.helpers.apptest import errors_of, frame_with, open_page
from tests.helpers.stored_runs import add_run, add_seeded_runs, summary_for

ACC = {"joint": [0.60, 0.62], "opm": [0.70, 0.715]}


def _runs(engine: Engine, group: str) -> dict[str, list[int]]:
    return add_seeded_runs(
        engine,
        group,
        ACC,
        40,
        lambda acc, seed: summary_for(acc, acc, {"audio": acc - 0.1, "visual": acc - 0.3}, 0.2, 10.0),
    )


def _page_html(at: object) -> str:
    frames = [el.proto for el in at.get("iframe")]  # type: ignore[attr-defined]
    assert len(frames) == 1, "the report is shown once, as its HTML"
    return str(frames[0].srcdoc)


def test_report_page_shows_the_same_report_as_bml_report_with_downloads(engine: Engine) -> None:
    ids = _runs(engine, "rep")
    at = open_page("report", group="rep")
    assert not at.exception and not errors_of(at)
    html = _page_html(at)
    assert "Comparison: rep" in html and "Plotly.newPlot" in html and "<script src=" not in html
    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert {"Download HTML", "Download JSON"} <= set(buttons)

    doc = make_report(engine, ["rep"], [])
    shown = report_data.build(engine, ["rep"])
    page_doc = json.loads(shown.json)
    expected = json.loads(json.dumps(doc))
    for d in (page_doc, expected):
        d.pop("generated_at")
    assert page_doc == expected
    groups = {g["label"]: g for g in page_doc["groups"]}
    opm = groups["opm"]
    assert opm["n"] == 2 and opm["run_ids"] == ids["opm"]
    assert opm["metrics"]["test.acc"]["mean"] == statistics.fmean(ACC["opm"])
    assert opm["vs_baseline"]["verdict"] == "better"
    assert groups["joint"]["is_baseline"] is True
    assert "better" in html and "opm" in html


def test_several_groups_and_a_link_back_to_compare(engine: Engine) -> None:
    _runs(engine, "a")
    _runs(engine, "b")
    at = open_page("report", group="a,b")
    assert not at.exception and not errors_of(at)
    assert at.multiselect(key="report_groups").value == ["a", "b"]
    doc = json.loads(report_data.build(engine, ["a", "b"]).json)
    assert sum(g["n"] for g in doc["groups"]) == 8  # both groups' runs, grouped by strategy
    links = [el.proto for el in at.get("page_link")]
    assert [(link.page, link.query_string) for link in links if link.label == "Open in Compare"] == [
        ("compare", "group=a%2Cb")
    ]
    at = open_page("compare", group="a,b")  # Compare takes several groups the same way
    assert at.multiselect(key="compare_groups").value == ["a", "b"]
    results = frame_with(at, "verdict")
    assert list(results["group"]) == ["joint", "opm"] and list(results["n"]) == [4, 4]


def test_compare_links_to_the_report_of_the_same_runs(engine: Engine) -> None:
    _runs(engine, "rep")
    at = open_page("compare", group="rep")
    links = [el.proto for el in at.get("page_link")]
    report = [link for link in links if "report" in link.page]
    assert len(report) == 1 and "group=rep" in report[0].query_string


def test_bad_links_and_unfinished_runs_say_what_is_wrong(engine: Engine) -> None:
    add_run(engine, "still", "busy", ["opm"], steps=10, status="running")
    _runs(engine, "rep")
    at = open_page("report", group="nope")
    assert any("no group 'nope'" in e for e in errors_of(at))
    at = open_page("report", group="busy")
    assert any("nothing to report" in e and "still running" in e for e in errors_of(at))
    at = open_page("report", group="rep", by="not.a.path")
    assert any("not.a.path" in e for e in errors_of(at))
