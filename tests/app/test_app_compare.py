"""Compare page: deep links (`?runs=`, `?group=`, `?by=`), grouping by what differs (a
sweep of strategies × seeds gives one group per strategy), the group key picker, mean ±
std curves (checked against the store's own aggregate) and per-seed lines, the results
table (n, interval, difference to the baseline, verdict; checked against scipy), the
winner sentence, runs left out (cancelled, failed, running; retries), smoothing, the
per-run table's best marks, the config diff (only differing keys) and the CSV exports."""

from __future__ import annotations

import csv
import io
import math
import statistics

import pandas as pd
import pytest
from sqlalchemy import Engine

import db
from app.views.compare import data as cv
from tests.helpers.apptest import chart_specs, errors_of, frame_with, open_page
from tests.helpers.stored_runs import add_run, add_seeded_runs, series_for, summary_for


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
    # grouped by what differs (the strategy), one seed each: the per-seed lines start on
    assert at.toggle(key="compare_seeds").value is True
    specs = chart_specs(at)
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert sorted(titles) == sorted(at.multiselect(key="compare_keys").value)
    ratio = specs[titles.index("imbalance/ratio/audio")]
    lines = [t for t in ratio["data"] if t.get("mode") == "lines"]
    assert [t["name"] for t in lines] == [
        "ogm_ge (n=1)",
        f"ogm_ge · seed 0 · #{a}",
        "opm (n=1)",
        f"opm · seed 1 · #{b}",
    ]
    stored = db.downsampled_series(engine, a, "imbalance/ratio/audio", cv.compare_max_buckets)
    assert lines[1]["x"] == stored.steps and lines[1]["y"] == pytest.approx(stored.means)
    assert lines[0]["line"]["color"] == lines[1]["line"]["color"] != lines[2]["line"]["color"]

    diff = frame_with(at, "key")
    keys = set(diff["key"])
    assert {"name", "group", "seed", "strategies", "ogm_ge.alpha", "opm.q_base"} <= keys
    assert "optim.lr" not in keys and "train.epochs" not in keys  # equal in both configs
    # strategy parameters by strategy name, as grouping names them, never by list position (issue 24)
    assert not [k for k in keys if k.startswith("strategies.")] and diff["key"].iloc[0] == "strategies"
    row = diff[diff["key"] == "strategies"].iloc[0]
    assert row[f"#{a} ogm-s0"] == "ogm_ge" and row[f"#{b} opm-s1"] == "opm"
    alpha = diff[diff["key"] == "ogm_ge.alpha"].iloc[0]
    assert alpha[f"#{a} ogm-s0"] == "0.8" and alpha[f"#{b} opm-s1"] == "(absent)"


def test_group_deep_link_aggregates_mean_and_std_over_seeds(
    engine: Engine, two_settings: dict[str, list[int]]
) -> None:
    at = open_page("compare", group="ogm")
    assert at.radio(key="compare_mode").value == "groups"
    assert at.toggle(key="compare_seeds").value is False  # seeds of one setting: mean ± std
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
    assert group_table.iloc[0]["n"] == 3 and "±" in group_table.iloc[0]["test acc"]


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
    fair = add_run(  # another seed: a run with the same config and seed would be a retry of `good`
        engine,
        "fair",
        "s",
        seed=1,
        summary=summary_for(0.7, 0.88, {"audio": 0.7, "visual": 0.7}, 0.05, 20.0),
    )
    at = open_page("compare", runs=f"{good},{fair}")
    frame, higher = cv.summary_table([db.get_run(engine, good), db.get_run(engine, fair)])
    best = cv.best_rows(frame, higher)
    assert best["val acc"] == [0] and best["test acc"] == [1]
    assert best["imbalance degree"] == [1] and best["time (s)"] == [1]  # lower is better there
    assert best["test acc visual"] == [1] and best["val acc audio"] == [0]
    shown = frame_with(at, "run")
    assert list(shown["run"]) == [good, fair]

    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert {"Download results CSV", "Download runs CSV", "Download curves CSV"} <= set(buttons)
    summary_csv = pd.read_csv(io.BytesIO(cv.to_csv(frame)))
    assert list(summary_csv["name"]) == ["good", "fair"] and summary_csv["test acc"].tolist() == [0.85, 0.88]


def test_bad_links_say_what_is_wrong(engine: Engine, two_settings: dict[str, list[int]]) -> None:
    at = open_page("compare", runs="1,x,999")
    assert any("not run ids: x" in e for e in errors_of(at))
    assert any("no run 999" in e for e in errors_of(at))
    at = open_page("compare", group="nope")
    assert any("no group 'nope'" in e for e in errors_of(at))


# A sweep of three strategies x two seeds, with known test accuracies per seed.
SWEEP_ACC = {"joint": [0.60, 0.62], "ogm_ge": [0.63, 0.64], "opm": [0.70, 0.715]}


def _sweep(engine: Engine, group: str = "sweep") -> dict[str, list[int]]:
    return add_seeded_runs(
        engine,
        group,
        SWEEP_ACC,
        120,
        lambda acc, seed: summary_for(
            acc - 0.01, acc, {"audio": acc - 0.1, "visual": acc - 0.3}, 0.2, 10.0 + seed
        ),
    )


def _lines(at: object, title: str) -> list[dict[str, object]]:
    spec = next(s for s in chart_specs(at) if s["layout"]["title"]["text"] == title)
    return [t for t in spec["data"] if t.get("mode") == "lines"]


def test_a_sweep_of_three_strategies_and_two_seeds_gives_three_groups_with_verdicts(engine: Engine) -> None:
    from scipy import stats as sps

    ids = _sweep(engine)
    at = open_page("compare", group="sweep")
    assert not at.exception and not errors_of(at)
    # grouped by what differs, the seed aside: the strategy
    assert at.multiselect(key="compare_key").value == []
    assert at.selectbox(key="compare_baseline").value == "joint"
    assert [t["name"] for t in _lines(at, "val/acc")] == ["joint (n=2)", "ogm_ge (n=2)", "opm (n=2)"]
    colours = [t["line"]["color"] for t in _lines(at, "val/acc")]
    assert len(set(colours)) == 3

    results = frame_with(at, "verdict")
    assert list(results["group"]) == ["joint", "ogm_ge", "opm"]
    assert list(results["n"]) == [2, 2, 2] and list(results["seeds"]) == ["0, 1"] * 3
    # paired t over the seeds against joint, Holm across the two comparisons
    p_ogm = sps.ttest_rel(SWEEP_ACC["ogm_ge"], SWEEP_ACC["joint"]).pvalue
    p_opm = sps.ttest_rel(SWEEP_ACC["opm"], SWEEP_ACC["joint"]).pvalue
    low, high = sorted([p_ogm, p_opm])
    holm = {low: 2 * low, high: max(2 * low, high)}  # Holm's step-down for two tests
    assert 2 * min(p_opm, p_ogm) < 0.05 < max(2 * low, high)  # the data give one of each verdict
    assert list(results["verdict"]) == ["baseline", "not distinguishable from seed noise", "better"]
    assert results.iloc[2]["p (Holm)"] == f"{holm[p_opm]:.3f}"
    assert results.iloc[1]["p (Holm)"] == f"{holm[p_ogm]:.3f}"
    assert results.iloc[2]["Δ vs joint (points)"] == "+9.75"
    mean, std = statistics.fmean(SWEEP_ACC["opm"]), statistics.stdev(SWEEP_ACC["opm"])
    assert results.iloc[2]["test acc"] == f"{mean:.4f} ± {std:.4f}"
    half = sps.t.ppf(0.975, 1) * std / math.sqrt(2)
    assert results.iloc[2]["95 % interval"] == f"[{mean - half:.4f}, {mean + half:.4f}]"
    assert results.iloc[2]["test acc audio"] == f"{mean - 0.1:.4f} ± {std:.4f}"

    diffs = [o - j for o, j in zip(SWEEP_ACC["opm"], SWEEP_ACC["joint"], strict=True)]
    d_half = sps.t.ppf(0.975, 1) * statistics.stdev(diffs) / math.sqrt(2)
    d_mean = statistics.fmean(diffs)
    sentence = next(m.value for m in at.markdown if "beats" in m.value)
    assert (
        f"opm beats joint by +{100 * d_mean:.1f} points (95 % CI {100 * (d_mean - d_half):+.1f} to "
        f"{100 * (d_mean + d_half):+.1f}), beyond seed noise (paired t, Holm p = {holm[p_opm]:.3f})"
    ) in sentence

    runs = frame_with(at, "seed")
    assert list(runs["run"]) == [i for s in SWEEP_ACC for i in ids[s]]
    assert (
        list(runs["seed"]) == [0, 1] * 3
        and list(runs["group"]) == ["joint"] * 2 + ["ogm_ge"] * 2 + ["opm"] * 2
    )
    assert set(runs["status"]) == {"succeeded"}

    # the baseline can be changed: ogm_ge then is the reference
    at.selectbox(key="compare_baseline").set_value("ogm_ge").run()
    results = frame_with(at, "verdict")
    assert results.iloc[1]["verdict"] == "baseline" and "Δ vs ogm_ge (points)" in results


def test_cancelled_failed_and_running_runs_are_left_out_and_a_retry_counts_once(engine: Engine) -> None:
    ids = _sweep(engine)
    # opm seed 1 was retried (a clone, as the Runs page does), that copy cancelled half-way and
    # retried again: runs.retry_of links the chain, the newest copy counts
    from services.actions import retry

    cancelled = retry(ids["opm"][1], engine=engine)
    db.claim_run(engine, cancelled, "test-worker")
    db.write_points(engine, cancelled, series_for(["opm"], range(1, 61), 1))
    db.finish_run(engine, cancelled, "cancelled")
    retried = retry(cancelled, engine=engine)
    db.claim_run(engine, retried, "test-worker")
    db.finish_run(
        engine, retried, "succeeded", summary=summary_for(0.7, 0.72, {"audio": 0.6, "visual": 0.4}, 0.2, 10.0)
    )
    failed = add_run(engine, "sweep-ogm_ge-s2", "sweep", ["ogm_ge"], seed=2, steps=40, status="failed")
    running = add_run(engine, "sweep-joint-s2", "sweep", [], seed=2, steps=40, status="running")

    at = open_page("compare", group="sweep")
    assert not at.exception
    results = frame_with(at, "verdict")
    # opm: seed 0, the first seed 1 (same config as the retry: only the newest counts) ... and the retry
    assert list(results["n"]) == [2, 2, 2]
    assert "not pooled" not in results
    runs = frame_with(at, "seed")
    assert (
        cancelled not in set(runs["run"])
        and failed not in set(runs["run"])
        and running not in set(runs["run"])
    )
    note = runs[runs["run"] == retried].iloc[0]["note"]
    assert note == f"retry of #{cancelled}"  # the run it cloned (runs.retry_of)
    assert [t["name"] for t in _lines(at, "val/acc")] == ["joint (n=2)", "ogm_ge (n=2)", "opm (n=2)"]

    at.toggle(key="compare_excluded").set_value(True).run()
    results = frame_with(at, "verdict")
    assert list(results["n"]) == [2, 2, 2]  # shown, never counted
    assert (
        "#" + str(running) in results.iloc[0]["not pooled"]
        and "still running" in results.iloc[0]["not pooled"]
    )
    assert f"#{failed} failed" in results.iloc[1]["not pooled"]
    assert f"#{cancelled} cancelled" in results.iloc[2]["not pooled"]
    runs = frame_with(at, "seed")
    marked = runs.set_index("run")
    assert (
        marked.loc[cancelled, "status"] == "✗ cancelled"
        and "not pooled: cancelled" in marked.loc[cancelled, "note"]
    )
    assert marked.loc[failed, "status"] == "✗ failed" and marked.loc[running, "status"] == "✗ running"
    assert marked.loc[retried, "status"] == "succeeded"
    dotted = [t for t in _lines(at, "val/acc") if t["line"].get("dash") == "dot"]
    assert {t["name"] for t in dotted} >= {
        f"opm · seed 1 · #{cancelled} · retry of #{ids['opm'][1]} · cancelled, not pooled",
        f"ogm_ge · seed 2 · #{failed} · failed, not pooled",
    }


def test_an_identical_relaunch_counts_as_its_own_run(engine: Engine) -> None:
    ids = _sweep(engine)
    # opm seed 1 launched again with the same config (not a Retry): no retry_of, both count
    relaunch = add_run(engine, "sweep-opm-s1", "sweep", ["opm"], seed=1, steps=60)
    assert db.get_run(engine, relaunch).retry_of is None
    at = open_page("compare", group="sweep")
    assert not at.exception
    assert list(frame_with(at, "verdict")["n"]) == [2, 2, 3]
    runs = frame_with(at, "seed").set_index("run")
    assert {ids["opm"][1], relaunch} <= set(runs.index)
    assert "retry" not in str(runs.loc[relaunch, "note"])


def test_the_group_key_can_be_picked(engine: Engine) -> None:
    for lr in (0.01, 0.1):
        for seed in range(2):
            add_run(engine, f"lr{lr}-s{seed}", "lr", ["opm"], seed=seed, steps=40, optim={"lr": lr})
    at = open_page("compare", group="lr")
    assert [t["name"] for t in _lines(at, "val/acc")] == ["optim.lr=0.01 (n=2)", "optim.lr=0.1 (n=2)"]
    at.multiselect(key="compare_key").set_value(["strategies"]).run()
    assert at.query_params["by"] in ("strategies", ["strategies"])
    assert [t["name"] for t in _lines(at, "val/acc")] == ["opm (n=4)"]
    results = frame_with(at, "verdict")
    assert list(results["n"]) == [4]
    at = open_page("compare", group="lr", by="nope.path")
    assert any("nope.path" in e for e in errors_of(at))


def test_csv_downloads_carry_the_seed_and_the_group_key(engine: Engine) -> None:
    ids = _sweep(engine)
    runs, _ = cv.runs_of(engine, groups=["sweep"])
    grouping = cv.group(runs)
    names = cv.display_names(grouping, runs)
    res = cv.results(grouping)

    results = pd.read_csv(io.BytesIO(cv.to_csv(cv.results_csv_rows(res, names))))
    assert list(results["group key"]) == ["joint", "ogm_ge", "opm"]
    assert list(results["strategies"]) == ["joint", "ogm_ge", "opm"]
    assert list(results["seeds"]) == ["0 1"] * 3 and list(results["n"]) == [2, 2, 2]
    assert results["test.acc mean"].tolist() == pytest.approx(
        [statistics.fmean(v) for v in SWEEP_ACC.values()]
    )
    assert list(results["verdict"]) == ["baseline", "not distinguishable from seed noise", "better"]

    frame, _ = cv.per_run_table(grouping, names)
    per_run = pd.read_csv(io.BytesIO(cv.to_csv(frame)))
    assert list(per_run["seed"]) == [0, 1] * 3
    assert list(per_run["group key"]) == [s for s in SWEEP_ACC for _ in range(2)]

    key = "val/acc"
    aggregates = {
        g.label: db.group_aggregate(engine, key, run_ids=g.run_ids, max_buckets=cv.compare_max_buckets)
        for g in grouping.groups
    }
    series = {r.id: db.downsampled_many(engine, r.id, [key], cv.compare_max_buckets) for r in runs}
    rows = cv.curves(key, grouping, aggregates, series, names=names).rows
    curves = pd.read_csv(io.BytesIO(cv.to_csv(rows)))
    per_group = curves[curves["series"] == "group"]
    per_run_rows = curves[curves["series"] == "run"]
    assert set(per_group["group"]) == {"joint", "ogm_ge", "opm"} and set(per_group["runs"]) == {2}
    assert set(per_run_rows["run"].astype(int)) == {i for v in ids.values() for i in v}
    first = per_run_rows[per_run_rows["run"].astype(int) == ids["opm"][1]]
    assert set(first["seed"].astype(int)) == {1} and set(first["group key"]) == {"opm"}
    stored = db.downsampled_series(engine, ids["opm"][1], key, cv.compare_max_buckets)
    assert first["mean"].tolist() == pytest.approx(stored.means)
    opm = per_group[per_group["group"] == "opm"]
    assert opm["mean"].tolist() == pytest.approx(aggregates["opm"].means)


def test_a_group_with_one_seed_has_no_interval_and_no_test(engine: Engine) -> None:
    add_run(engine, "one-joint", "one", [], seed=0, steps=20)
    add_run(engine, "one-opm", "one", ["opm"], seed=0, steps=20)
    at = open_page("compare", group="one")
    results = frame_with(at, "verdict")
    assert list(results["n"]) == [1, 1]
    assert "no interval" in results.iloc[1]["95 % interval"]
    assert results.iloc[1]["verdict"] == "not tested"
    assert any("not tested" in m.value for m in at.markdown)


def test_runs_still_training_are_drawn_dotted_when_nothing_has_finished(engine: Engine) -> None:
    a = add_run(engine, "busy-opm", "busy", ["opm"], steps=50, status="running")
    b = add_run(engine, "busy-joint", "busy", [], steps=50, status="running")
    at = open_page("compare", group="busy")
    assert not at.exception
    assert at.toggle(key="compare_excluded").value is True
    lines = _lines(at, "val/acc")
    assert {t["name"] for t in lines} == {
        f"opm · seed 0 · #{a} · running, not pooled",
        f"joint · seed 0 · #{b} · running, not pooled",
    }
    assert all(t["line"]["dash"] == "dot" for t in lines)
    results = frame_with(at, "verdict")
    assert list(results["n"]) == [0, 0] and set(results["verdict"]) == {"no finished run"}


def test_csv_downloads_escape_cells_a_spreadsheet_would_run_as_formulas(engine: Engine) -> None:
    # OWASP CSV injection: text starting with = + - @ tab CR gets a leading ' (issue 25)
    for seed in range(2):
        add_run(engine, f"@SUM(A1)-s{seed}", "=1+2", ["opm"], seed=seed, steps=20)
    runs, _ = cv.runs_of(engine, groups=["=1+2"])
    grouping = cv.group(runs)
    names = cv.display_names(grouping, runs)
    frame, _ = cv.per_run_table(grouping, names)
    per_run = pd.read_csv(io.BytesIO(cv.to_csv(frame)))
    assert set(per_run["group"]) == {"'=1+2"}
    assert sorted(per_run["name"]) == ["'@SUM(A1)-s0", "'@SUM(A1)-s1"]
    assert list(per_run["seed"]) == [0, 1]  # numbers are left as numbers
    rows = [{"a": "+1", "b": "-x", "c": "\tq", "e": "plain", "f": -0.5, "=h": 1}]
    text = cv.to_csv(rows).decode()
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["a", "b", "c", "e", "f", "'=h"],
        ["'+1", "'-x", "'\tq", "plain", "-0.5", "1"],
    ]
    assert cv.to_csv([{"d": "\rq"}]).decode() == "d\n'\rq\n"
