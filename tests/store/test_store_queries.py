"""The read API: run listing with filters and pagination, incremental and tail reads,
latest values, downsampling (checked against a brute-force computation from the raw
points), group aggregation, config diff, events; NaN and inf come back as such."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from sqlalchemy import Engine

import db
from db.queries import plan_buckets


def _config(
    name: str, group: str, strategies: list[str], dataset: str = "synthetic", **extra: Any
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "group": group,
        "strategies": strategies,
        "dataset": {"name": dataset},
    }
    cfg.update(extra)
    return cfg


def test_list_runs_filters_paginates_and_counts(engine: Engine) -> None:
    ids = []
    for i in range(12):
        strategy = ["opm"] if i % 3 == 0 else ["ogm_ge"]
        tags = ["even"] if i % 2 == 0 else ["odd"]
        if i == 4:
            tags.append("special")
        dataset = "features" if i == 5 else "synthetic"
        ids.append(db.create_run(engine, _config(f"run-{i}", f"g{i % 2}", strategy, dataset), tags=tags))
    db.claim_run(engine, ids[1], "w")

    page = db.list_runs(engine, limit=5)
    assert page.total == 12 and [r.id for r in page.runs] == ids[::-1][:5]
    page2 = db.list_runs(engine, limit=5, offset=10)
    assert [r.id for r in page2.runs] == ids[1::-1]
    assert db.list_runs(engine, status="running").total == 1
    assert db.list_runs(engine, status=["running", "queued"]).total == 12
    assert db.list_runs(engine, strategy="opm").total == 4
    assert db.list_runs(engine, dataset="features").runs[0].id == ids[5]
    assert db.list_runs(engine, group="g0").total == 6
    assert db.list_runs(engine, tags=["even"]).total == 6
    assert [r.id for r in db.list_runs(engine, tags=["even", "special"]).runs] == [ids[4]]
    assert [r.id for r in db.list_runs(engine, text="RUN-11").runs] == [ids[11]]
    assert db.list_runs(engine, text="opm").total == 4
    assert db.list_runs(engine, text="100%_").total == 0  # LIKE wildcards are escaped
    assert db.list_runs(engine, text=str(ids[7])).runs[-1].id == ids[7]
    # ids show as "#7" on the pages: "#7" (and "# 7") finds run 7 only (issue 25)
    assert [r.id for r in db.list_runs(engine, text=f"#{ids[7]}").runs] == [ids[7]]
    assert [r.id for r in db.list_runs(engine, text=f" # {ids[7]} ").runs] == [ids[7]]
    assert db.list_runs(engine, group="g1", strategy="opm").total == 2
    listed = db.list_runs(engine, limit=None).runs[0]
    assert listed.tags == ["odd"] and listed.summary is None
    assert listed.to_dict()["created_at"].endswith("+00:00")
    assert db.list_groups(engine) == {"g0": 6, "g1": 6}


def test_list_runs_keyset_pages_and_bounded_counts(engine: Engine) -> None:
    """Keyset pages (before_id) give the same runs as offset pages and say whether a next
    page exists; count_limit bounds the count and says it was capped (issue 22)."""
    ids = [
        db.create_run(engine, _config(f"k-{i}", "g" + str(i % 2), ["opm"], "synthetic")) for i in range(11)
    ]
    newest_first = ids[::-1]
    seen: list[int] = []
    before = None
    for n in range(3):
        page = db.list_runs(engine, limit=4, before_id=before)
        assert [r.id for r in page.runs] == newest_first[4 * n : 4 * n + 4]
        assert page.has_more is (n < 2) and page.total == 11 and not page.total_capped
        seen += [r.id for r in page.runs]
        before = page.runs[-1].id
    assert seen == newest_first
    # a page that ends exactly at the last run has no next page
    assert db.list_runs(engine, limit=11).has_more is False
    assert db.list_runs(engine, limit=10).has_more is True
    # the filter applies to keyset pages too
    g1 = db.list_runs(engine, group="g1", limit=2, before_id=ids[6])
    assert [r.id for r in g1.runs] == [ids[5], ids[3]] and g1.total == 5 and g1.has_more
    capped = db.list_runs(engine, limit=3, count_limit=5)
    assert (capped.total, capped.total_capped) == (5, True)
    assert [r.id for r in capped.runs] == newest_first[:3]
    exact = db.list_runs(engine, count_limit=11)
    assert (exact.total, exact.total_capped) == (11, False)


def test_series_reads_incremental_tail_and_latest(engine: Engine) -> None:
    run_id = db.create_run(engine, _config("a", "g", []))
    db.write_points(engine, run_id, {"train/loss": [(s, 10.0 - s / 100) for s in range(1, 501)]})
    db.write_points(engine, run_id, {"val/acc": [(100, 0.5), (200, 0.6), (300, float("nan"))]})
    assert db.series_keys(engine, run_id) == ["train/loss", "val/acc"]

    since = db.series_since(engine, run_id, after_step=495, keys=["train/loss"])
    assert since["train/loss"].steps == [496, 497, 498, 499, 500]
    per_key = db.series_since(engine, run_id, after_step={"train/loss": 498, "val/acc": 150})
    assert per_key["train/loss"].steps == [499, 500]
    assert per_key["val/acc"].steps == [200, 300] and math.isnan(per_key["val/acc"].values[1])
    limited = db.series_since(engine, run_id, after_step=0, keys=["train/loss"], limit=3)
    assert limited["train/loss"].steps == [1, 2, 3]

    tail = db.series_tail(engine, run_id, 3)
    assert tail["train/loss"].steps == [498, 499, 500]
    assert tail["train/loss"].values == pytest.approx([10 - 4.98, 10 - 4.99, 10 - 5.0])

    latest = db.latest_values(engine, run_id)
    assert latest["train/loss"] == (500, pytest.approx(5.0))
    assert latest["val/acc"][0] == 300 and math.isnan(latest["val/acc"][1])
    with pytest.raises(db.StoreError, match="no series 'nope'"):
        db.series_since(engine, run_id, keys=["nope"])


def test_reads_of_many_series_at_once(engine: Engine) -> None:
    run_id = db.create_run(engine, _config("wide", "g", []))
    keys = [f"k/{i:03d}" for i in range(450)]  # more than one UNION ALL statement holds
    db.write_points(engine, run_id, {k: [(s, i + s / 10) for s in range(1, 6)] for i, k in enumerate(keys)})
    tail = db.series_tail(engine, run_id, 2)
    assert list(tail) == keys
    assert all(tail[k].steps == [4, 5] and tail[k].values == [i + 0.4, i + 0.5] for i, k in enumerate(keys))
    since = db.series_since(engine, run_id, after_step=3, limit=1)
    assert all(since[k].steps == [4] for k in keys)
    assert db.series_since(engine, run_id, keys=[]) == {}


def test_nan_and_inf_are_stored_and_returned_as_such(engine: Engine) -> None:
    run_id = db.create_run(engine, _config("a", "g", []))
    values = [1.0, float("nan"), float("inf"), float("-inf"), 2.0]
    db.write_points(engine, run_id, {"k": list(enumerate(values, start=1))})
    got = db.series_since(engine, run_id)["k"].values
    assert (
        got[0] == 1.0 and math.isnan(got[1]) and got[2] == math.inf and got[3] == -math.inf and got[4] == 2.0
    )
    one = db.downsampled_series(engine, run_id, "k", max_buckets=1)
    assert (one.mins, one.maxs, one.counts, one.nan_counts, one.lasts) == (
        [-math.inf],
        [math.inf],
        [5],
        [1],
        [2.0],
    )
    assert math.isnan(one.means[0])  # inf + -inf
    db.write_points(engine, run_id, {"j": [(1, 1.0), (2, float("inf"))], "n": [(1, float("nan"))]})
    j = db.downsampled_series(engine, run_id, "j", max_buckets=1)
    assert j.means == [math.inf] and j.maxs == [math.inf]
    n = db.downsampled_series(engine, run_id, "n", max_buckets=1)
    assert math.isnan(n.mins[0]) and math.isnan(n.means[0]) and n.nan_counts == [1]


def test_over_long_and_empty_keys_are_refused_with_a_message(engine: Engine) -> None:
    run_id = db.create_run(engine, _config("a", "g", []))
    with pytest.raises(db.InvalidMetricKey, match="250 characters long, the limit is 200"):
        db.write_points(engine, run_id, {"x" * 250: [(1, 1.0)], "ok": [(1, 1.0)]})
    with pytest.raises(db.InvalidMetricKey, match="empty"):
        db.write_points(engine, run_id, {"": [(1, 1.0)]})
    assert db.series_keys(engine, run_id) == []  # nothing of the refused write was stored
    with pytest.raises(ValueError, match="steps start at 0"):
        db.write_points(engine, run_id, {"ok": [(-1, 1.0)]})


def test_writing_the_same_steps_twice_keeps_one_point_per_step(engine: Engine) -> None:
    run_id = db.create_run(engine, _config("a", "g", []))
    first = [(s, float(s)) for s in range(1, 1001)]
    db.write_points(engine, run_id, {"k": first})
    db.write_points(engine, run_id, {"k": [(s, float(s) * 2) for s in range(500, 1001)]})
    db.write_points(engine, run_id, {"k": [(7, 1.0), (7, 3.0)]})  # repeated in one batch: last wins
    got = db.series_since(engine, run_id)["k"]
    assert got.steps == list(range(1, 1001))
    expected = {s: float(s) for s in range(1, 500)} | {s: 2.0 * s for s in range(500, 1001)} | {7: 3.0}
    assert got.values == [expected[s] for s in got.steps]
    whole = db.downsampled_series(engine, run_id, "k", max_buckets=1)
    assert whole.counts == [1000] and whole.means[0] == pytest.approx(sum(expected.values()) / 1000)


def _brute(points: dict[int, float], bucket_width: int) -> dict[int, tuple[float, float, float, float, int]]:
    buckets: dict[int, list[tuple[int, float]]] = {}
    for step in sorted(points):
        buckets.setdefault(step // bucket_width, []).append((step, points[step]))
    out = {}
    for b, items in buckets.items():
        vals = [v for _, v in items]
        out[b] = (min(vals), max(vals), sum(vals) / len(vals), items[-1][1], len(vals))
    return out


def test_downsampling_matches_a_brute_force_computation_after_rewrites(engine: Engine) -> None:
    rng = random.Random(7)
    run_id = db.create_run(engine, _config("a", "g", []))
    truth: dict[int, float] = {}
    start = 3
    for _ in range(8):  # appended chunks of random size, with some steps written again
        end = start + rng.randint(50, 3000)
        chunk = [(s, rng.gauss(0, 1)) for s in range(start, end)]
        redo = [(s, rng.gauss(5, 1)) for s in rng.sample(sorted(truth), min(40, len(truth)))] if truth else []
        db.write_points(engine, run_id, {"k": chunk + redo})
        truth.update(dict(chunk))
        truth.update(dict(redo))
        start = end
    steps = sorted(truth)
    sources = set()
    for max_buckets in (1, 7, 100, 333, 2000, len(steps) + 5):
        d = db.downsampled_series(engine, run_id, "k", max_buckets=max_buckets)
        sources.add(d.source_width)
        assert 1 <= len(d.steps) <= max_buckets
        expected = _brute(truth, d.bucket_width)
        assert len(d.steps) == len(expected)
        for i, (b, (lo, hi, mean, last, n)) in enumerate(sorted(expected.items())):
            assert d.steps[i] // d.bucket_width == b
            assert (d.mins[i], d.maxs[i], d.lasts[i], d.counts[i]) == (lo, hi, last, n)
            assert d.means[i] == pytest.approx(mean, rel=1e-9, abs=1e-9)
        assert min(d.mins) == min(truth.values()) and max(d.maxs) == max(truth.values())
    assert {1, 16, 256} <= sources  # raw points and two rollup widths were exercised
    window = db.downsampled_series(engine, run_id, "k", max_buckets=50, start_step=5000, end_step=9000)
    assert len(window.steps) <= 50
    assert (
        window.steps[0] <= 5000 < window.last_steps[0] and window.last_steps[-1] >= 9000 - window.bucket_width
    )
    many = db.downsampled_many(engine, run_id, None, max_buckets=10)
    assert list(many) == ["k"]


def test_bucket_plan_uses_the_coarsest_rollup_that_fits() -> None:
    plan = plan_buckets(1, 1_000_000, 2000)
    assert plan.source_width == 256 and plan.bucket_width == 512
    assert plan.last_bucket - plan.first_bucket + 1 <= 2000
    assert plan_buckets(1, 1500, 2000).bucket_width == 1
    assert plan_buckets(0, 9, 1).last_bucket == plan_buckets(0, 9, 1).first_bucket
    for lo, hi, n in ((0, 10**7, 1000), (12345, 99999, 321), (5, 70000, 2)):
        p = plan_buckets(lo, hi, n)
        assert p.last_bucket - p.first_bucket + 1 <= n and p.bucket_width % p.source_width == 0
    with pytest.raises(ValueError):
        plan_buckets(0, 10, 0)


def test_group_aggregate_mean_std_count(engine: Engine) -> None:
    ids = [db.create_run(engine, _config(f"s{i}", "seeds", ["opm"], seed=i)) for i in range(3)]
    other = db.create_run(engine, _config("x", "other", []))
    for i, rid in enumerate(ids):
        n = 100 if i < 2 else 60  # the third run stopped early
        db.write_points(engine, rid, {"val/acc": [(s, float(i) + s / 100) for s in range(1, n + 1)]})
    db.write_points(engine, other, {"val/acc": [(s, 100.0) for s in range(1, 101)]})

    raw = db.group_aggregate(engine, "val/acc", group="seeds")
    assert raw.run_ids == ids and raw.bucket_width == 1 and raw.steps == list(range(1, 101))
    assert raw.counts[:60] == [3] * 60 and raw.counts[60:] == [2] * 40
    assert raw.means[0] == pytest.approx(1.01) and raw.stds[0] == pytest.approx(1.0)
    assert raw.means[99] == pytest.approx(0.5 + 1.0) and raw.stds[99] == pytest.approx(math.sqrt(0.5))

    coarse = db.group_aggregate(engine, "val/acc", run_ids=ids[:2], max_buckets=10)
    assert len(coarse.steps) <= 10 and coarse.bucket_width > 1
    first = [v for s, v in ((s, s / 100) for s in range(1, 101)) if s // coarse.bucket_width == 0]
    assert coarse.means[0] == pytest.approx(sum(first) / len(first) + 0.5)
    assert coarse.stds[0] == pytest.approx(math.sqrt(0.5)) and coarse.counts[0] == 2
    lonely = db.group_aggregate(engine, "val/acc", run_ids=[other])
    assert lonely.counts[0] == 1 and math.isnan(lonely.stds[0])
    assert db.group_aggregate(engine, "nothing", group="seeds").steps == []
    with pytest.raises(ValueError):
        db.group_aggregate(engine, "val/acc")


def test_config_diff_lists_only_differing_dotted_paths(engine: Engine) -> None:
    a = db.create_run(engine, _config("a", "g", [], seed=0))
    b = db.create_run(engine, {**_config("a", "g", ["ogm_ge"], seed=1), "train": {"epochs": 5}})
    diff = db.config_diff(engine, [a, b])
    assert diff["seed"] == {a: 0, b: 1}
    assert diff["train.epochs"] == {a: 100, b: 5}
    assert diff["strategies"] == {a: []}  # empty list in a; b has items instead
    assert diff["strategies.0.name"] == {b: "ogm_ge"}
    assert "name" not in diff and "optim.lr" not in diff
    assert db.config_diff(engine, [a, a]) == {}


def test_events_in_order_and_incrementally(engine: Engine) -> None:
    run_id = db.create_run(engine, _config("a", "g", []))
    for i in range(5):
        db.add_event(engine, run_id, "warning" if i % 2 else "info", f"e{i}")
    events = db.run_events(engine, run_id)
    assert [e.message for e in events] == ["e0", "e1", "e2", "e3", "e4"]
    assert [e.message for e in db.run_events(engine, run_id, after_id=events[2].id)] == ["e3", "e4"]
    assert events[1].level == "warning" and events[0].time.tzinfo is not None
    with pytest.raises(ValueError):
        db.add_event(engine, run_id, "loud", "x")


def test_filter_values_are_the_distinct_values_in_the_store(engine: Engine) -> None:
    """The Runs page's filter choices (issue 22: read as DISTINCT, not by listing every run)."""
    assert db.filter_values(engine) == {"strategy": [], "dataset": [], "group": [], "owner": []}
    db.create_run(engine, {"name": "a", "group": "g2", "strategies": ["opm"]}, owner="ada")
    db.create_run(engine, {"name": "b", "group": "g1", "strategies": ["opm"]}, owner="ada")
    db.create_run(engine, {"name": "c", "group": "g1", "dataset": {"name": "mfeat"}})  # no owner
    assert db.filter_values(engine) == {
        "strategy": ["joint", "opm"],
        "dataset": ["mfeat", "synthetic"],
        "group": ["g1", "g2"],
        "owner": ["ada"],
    }
