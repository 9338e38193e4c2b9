"""Compare page: deep links (`?runs=`, `?group=`), per-run and mean ± std curves (checked
against the store's own aggregate), smoothing, the summary table's best marks, the config
diff (only differing keys) and the CSV exports."""

from __future__ import annotations

import io
import math
import statistics

import pandas as pd
import pytest
from app_helpers import chart_specs, errors_of, frame_with, open_page
from app_runs import add_run, summary_for
from sqlalchemy import Engine

import db
from app.views.compare import data as cv


@pytest.fixture
def two_settings(engine: Engine) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {"ogm": [], "opm": []}
    for seed in range(3):
        ids["ogm"].append(add_run(engine, f"ogm-s{seed}", "ogm", ["ogm_ge"], seed=seed, steps=300))
        ids["opm"].append(add_run(engine, f"opm-s{seed}", "opm", ["opm"], seed=seed, steps=300))
    return ids


def test_deep_link_runs_draws_one_line_per_run_and_diff_shows_only_differing_keys(
    engine: Engine, two_settings: dict[str, list[int]]
) -> None:
    a, b = two_settings["ogm"][0], two_settings["opm"][1]
    at = open_page("compare", runs=f"{a},{b}")
    assert not at.exception and not errors_of(at)
    assert at.multiselect(key="compare_runs").value == [a, b]
    assert at.toggle(key="compare_aggregate").value is False  # one run per group: no aggregation
    specs = chart_specs(at)
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert sorted(titles) == sorted(at.multiselect(key="compare_keys").value)
    ratio = specs[titles.index("imbalance/ratio/audio")]
    lines = [t for t in ratio["data"] if t.get("mode") == "lines"]
    assert [t["name"] for t in lines] == [f"#{a} ogm-s0", f"#{b} opm-s1"]
    stored = db.downsampled_series(engine, a, "imbalance/ratio/audio", cv.compare_max_buckets)
    assert lines[0]["x"] == stored.steps and lines[0]["y"] == pytest.approx(stored.means)

    diff = frame_with(at, "key")
    keys = set(diff["key"])
    assert {"name", "group", "seed", "strategies.0.name"} <= keys
    assert "optim.lr" not in keys and "train.epochs" not in keys  # equal in both configs
    row = diff[diff["key"] == "strategies.0.name"].iloc[0]
    assert row[f"#{a} ogm-s0"] == "ogm_ge" and row[f"#{b} opm-s1"] == "opm"


def test_group_deep_link_aggregates_mean_and_std_over_seeds(
    engine: Engine, two_settings: dict[str, list[int]]
) -> None:
    at = open_page("compare", group="ogm")
    assert at.radio(key="compare_mode").value == "a group"
    assert at.toggle(key="compare_aggregate").value is True
    spec = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "val/acc")
    line = next(t for t in spec["data"] if t.get("mode") == "lines")
    band = next(t for t in spec["data"] if t.get("fill") == "toself")
    assert line["name"] == "ogm (n=3)"
    # recompute mean and std over the three seeds from each run's own val/acc points
    per_run = [db.series_since(engine, rid, keys=["val/acc"])["val/acc"] for rid in two_settings["ogm"]]
    step = per_run[0].steps[3]
    values = [s.values[s.steps.index(step)] for s in per_run]
    i = line["x"].index(step)
    assert line["y"][i] == pytest.approx(statistics.fmean(values))
    n = len(line["x"])
    upper, lower = band["y"][:n], band["y"][n:][::-1]
    assert upper[i] - line["y"][i] == pytest.approx(statistics.stdev(values))
    assert line["y"][i] - lower[i] == pytest.approx(statistics.stdev(values))
    group_table = frame_with(at, "n")
    assert group_table.iloc[0]["n"] == 3 and "±" in group_table.iloc[0]["val acc"]


def test_smoothing_changes_the_drawn_curve_as_the_ema_says(
    engine: Engine, two_settings: dict[str, list[int]]
) -> None:
    rid = two_settings["opm"][0]
    at = open_page("compare", runs=str(rid))
    raw = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "imbalance/ratio/audio")
    at.slider(key="compare_smoothing").set_value(0.9).run()
    smoothed = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == "imbalance/ratio/audio")
    y_raw = next(t for t in raw["data"] if t.get("mode") == "lines")["y"]
    y_smooth = next(t for t in smoothed["data"] if t.get("mode") == "lines")["y"]
    assert y_smooth == pytest.approx(cv.smooth(y_raw, 0.9))
    assert y_smooth != pytest.approx(y_raw)


def test_smooth_is_a_debiased_ema_that_skips_nan() -> None:
    assert cv.smooth([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    out = cv.smooth([2.0, math.nan, 4.0], 0.5)
    assert out[0] == pytest.approx(2.0) and math.isnan(out[1])
    assert out[2] == pytest.approx((0.5 * (0.5 * 2.0) + 0.5 * 4.0) / (1 - 0.25))
    with pytest.raises(ValueError):
        cv.smooth([1.0], 1.0)


def test_summary_marks_the_best_per_column_and_exports_csv(engine: Engine) -> None:
    good = add_run(
        engine, "good", "s", summary=summary_for(0.9, 0.85, {"audio": 0.8, "visual": 0.6}, 0.30, 50.0)
    )
    fair = add_run(
        engine, "fair", "s", summary=summary_for(0.7, 0.88, {"audio": 0.7, "visual": 0.7}, 0.05, 20.0)
    )
    at = open_page("compare", runs=f"{good},{fair}")
    frame, higher = cv.summary_table([db.get_run(engine, good), db.get_run(engine, fair)])
    best = cv.best_rows(frame, higher)
    assert best["val acc"] == [0] and best["test acc"] == [1]
    assert best["imbalance degree"] == [1] and best["time (s)"] == [1]  # lower is better there
    assert best["test acc visual"] == [1] and best["val acc audio"] == [0]
    shown = frame_with(at, "imbalance degree")
    assert list(shown["run"]) == [good, fair]

    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert {"Download summary CSV", "Download curves CSV"} <= set(buttons)
    summary_csv = pd.read_csv(io.BytesIO(cv.to_csv(frame)))
    assert list(summary_csv["name"]) == ["good", "fair"] and summary_csv["test acc"].tolist() == [0.85, 0.88]


def test_bad_links_say_what_is_wrong(engine: Engine, two_settings: dict[str, list[int]]) -> None:
    at = open_page("compare", runs="1,x,999")
    assert any("not run ids: x" in e for e in errors_of(at))
    assert any("no run 999" in e for e in errors_of(at))
    at = open_page("compare", group="nope")
    assert any("no group 'nope'" in e for e in errors_of(at))
