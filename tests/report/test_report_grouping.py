"""Grouping runs into the seeds of one setting (bml_core.compare.grouping): the default
key (what differs except the seed), explicit keys, labels, excluded statuses with their
reason, retries (clones) and resumed attempts, and the baseline."""

from __future__ import annotations

from typing import Any

import pytest

from bml_core.compare import default_baseline, differing_paths, group_runs
from bml_core.compare.grouping import group_label
from bml_core.config import validate_config


def cfg(strategies: list[Any], seed: int = 0, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": f"r{seed}", "group": "sweep", "seed": seed, "strategies": strategies}
    raw.update(over)
    return validate_config(raw).to_dict()


SUMMARY = {"test": {"acc": 0.7, "acc_per_modality": {"audio": 0.6, "visual": 0.5}}}
_next_id = iter(range(1, 10_000))


def run(config: dict[str, Any], status: str = "succeeded", **over: Any) -> dict[str, Any]:
    rid = next(_next_id)
    out = {
        "id": rid,
        "name": config["name"],
        "group": config["group"],
        "status": status,
        "seed": config["seed"],
        "attempt": 1,
        "config": config,
        "summary": SUMMARY if status == "succeeded" else None,
        "progress": 1.0 if status == "succeeded" else 0.4,
    }
    out.update(over)
    return out


def sweep() -> list[dict[str, Any]]:
    out = []
    for s in (["joint"], ["ogm_ge"], ["opm"]):
        for seed in (0, 1):
            out.append(run(cfg(s if s != ["joint"] else [], seed)))
    return out


def test_a_sweep_splits_by_strategy_not_by_seed() -> None:
    g = group_runs(sweep())
    assert g.auto and g.by == ["strategies"]
    assert [x.label for x in g.groups] == ["joint", "ogm_ge", "opm"]
    assert [x.n for x in g.groups] == [2, 2, 2]
    assert [x.seeds for x in g.groups] == [[0, 1]] * 3
    assert default_baseline(g) == "joint"
    assert all(r.included and r.reason is None for r in g.runs)


def test_swept_parameter_joins_the_key_but_absence_in_joint_does_not() -> None:
    configs = [
        cfg([], 0),
        cfg([{"name": "ogm_ge", "alpha": 0.5}], 0),
        cfg([{"name": "ogm_ge", "alpha": 0.8}], 0),
    ]
    assert differing_paths(configs) == ["strategies", "ogm_ge.alpha"]
    configs = [cfg([], 0), cfg(["ogm_ge"], 0), cfg(["opm"], 0)]
    assert differing_paths(configs) == ["strategies"]  # opm.q_base etc. exist in one run only
    lr = [cfg(["opm"], s, optim={"lr": lr}) for s in (0, 1) for lr in (0.01, 0.1)]
    g = group_runs([run(c) for c in lr])
    assert g.by == ["optim.lr"] and [x.label for x in g.groups] == ["optim.lr=0.01", "optim.lr=0.1"]
    assert default_baseline(g) == "optim.lr=0.01"  # no joint group: the first


def test_explicit_key_and_unknown_key() -> None:
    runs = [run(cfg(["opm"], s, optim={"lr": lr})) for s in (0, 1) for lr in (0.01, 0.1)]
    g = group_runs(runs, by=["strategies"])
    assert not g.auto and [x.label for x in g.groups] == ["opm"] and g.groups[0].n == 4
    g = group_runs(runs, by=["optim"])  # a sub-tree: its leaves together
    assert len(g.groups) == 2
    with pytest.raises(ValueError, match="'optim.lrr' is not a config path"):
        group_runs(runs, by=["optim.lrr"])


def test_excluded_statuses_keep_their_group_and_reason() -> None:
    runs = sweep()
    runs.append(run(cfg(["opm"], 2), status="cancelled"))
    runs.append(run(cfg(["opm"], 3), status="running"))
    runs.append(run(cfg(["opm"], 4), status="failed", error="CUDA out of memory\ntraceback..."))
    runs.append(run(cfg(["opm"], 5), status="queued"))
    runs.append(run(cfg(["opm"], 6), summary={"test": {}}))
    g = group_runs(runs)
    assert [x.label for x in g.groups] == ["joint", "ogm_ge", "opm"]
    opm = g.group("opm")
    assert opm.n == 2 and opm.seeds == [0, 1]
    reasons = {r.record.seed: r.reason for r in g.excluded}
    assert reasons == {
        2: "cancelled",
        3: "still running (40 %)",
        4: "failed: CUDA out of memory",
        5: "queued, not started",
        6: "no test accuracy in its summary",
    }
    shown = group_runs(runs, statuses=("succeeded", "cancelled"))
    assert shown.group("opm").n == 2  # cancelled has no summary: still out, said why
    assert {r.record.seed: r.reason for r in shown.excluded}[2] == "no test accuracy in its summary"


def test_retry_clone_is_labelled_and_only_the_newest_copy_of_a_seed_counts() -> None:
    runs = sweep()
    first_opm_seed1 = runs[5]
    cancelled = run(cfg(["opm"], 1), status="cancelled", retry_of=first_opm_seed1["id"])
    runs.append(cancelled)
    clone = run(cfg(["opm"], 1), retry_of=cancelled["id"])  # a retry of the retry
    runs.append(clone)
    g = group_runs(runs)
    opm = g.group("opm")
    assert opm.n == 2 and opm.seeds == [0, 1] and opm.run_ids == [runs[4]["id"], clone["id"]]
    by_id = {r.record.id: r for r in g.runs}
    assert by_id[clone["id"]].retry_of == cancelled["id"] and by_id[clone["id"]].included
    assert by_id[clone["id"]].flags == [f"retry of #{cancelled['id']}"]
    # the chain clone -> cancelled -> first: the first gives way to the newest copy that counts
    assert by_id[first_opm_seed1["id"]].included is False
    assert by_id[first_opm_seed1["id"]].reason == (
        f"retried as run #{clone['id']}, the newer copy of this seed, which counts instead"
    )
    assert by_id[cancelled["id"]].reason == "cancelled"
    assert by_id[cancelled["id"]].flags == [f"retry of #{first_opm_seed1['id']}"]


def test_an_identical_relaunch_is_its_own_run_not_a_retry() -> None:
    runs = sweep()
    relaunch = run(cfg(["opm"], 1))  # same config and seed, launched again: no retry_of
    runs.append(relaunch)
    g = group_runs(runs)
    opm = g.group("opm")
    assert opm.n == 3 and opm.seeds == [0, 1, 1]
    by_id = {r.record.id: r for r in g.runs}
    assert by_id[relaunch["id"]].retry_of is None and by_id[relaunch["id"]].flags == []
    assert by_id[runs[5]["id"]].included and by_id[runs[5]["id"]].reason is None


def test_a_retry_whose_original_is_not_selected_counts() -> None:
    runs = sweep()
    clone = run(cfg(["opm"], 1), retry_of=9_999)  # the original was deleted or not picked
    g = group_runs([*runs[:5], clone])
    assert g.group("opm").run_ids == [runs[4]["id"], clone["id"]]
    assert next(r for r in g.runs if r.record.id == clone["id"]).flags == ["retry of #9999"]


def test_resumed_attempt_is_flagged_but_counts() -> None:
    runs = sweep()
    runs[0]["attempt"] = 2
    g = group_runs(runs)
    r = g.runs[0]
    assert r.included and r.flags == ["resumed (attempt 2)"]


def test_objects_with_attributes_and_iso_times() -> None:
    class Obj:
        def __init__(self, d: dict[str, Any]) -> None:
            self.__dict__.update(d)

    runs = [Obj(r) for r in sweep()]
    for r in runs:
        r.started_at, r.finished_at = "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:30+00:00"
    g = group_runs(runs)
    assert g.groups[0].included[0].record.wall_s == 90.0


def test_identical_configs_make_one_group_named_after_their_run_group() -> None:
    g = group_runs([run(cfg(["opm"], s)) for s in (0, 1, 2)])
    assert g.by == [] and [x.label for x in g.groups] == ["sweep"] and g.groups[0].n == 3
    other = run(cfg(["opm"], 3))
    other["group"] = "another"
    mixed = group_runs([run(cfg(["opm"], s)) for s in (0, 1)] + [other])
    assert [x.label for x in mixed.groups] == ["all runs"]  # two run groups: no one name


def test_one_group_label_users_read_and_the_long_form_still_accepted() -> None:
    """Issue 25: Compare said `joint` where Report said `strategies=joint`; one label now,
    the strategy alone, other paths as path=value; the old form still names the group."""
    assert group_label({"strategies": "joint"}) == "joint"
    assert group_label({"strategies": "opm+ogm_ge", "opm.q_base": 0.5}) == "opm+ogm_ge, opm.q_base=0.5"
    assert group_label({"optim.lr": 0.01}) == "optim.lr=0.01"
    assert group_label({}, ["g", "g"]) == "g" and group_label({}, ["g", "h"]) == "all runs"
    g = group_runs(sweep())
    assert g.resolve("strategies=joint") == g.resolve("joint") == "joint"
    assert g.resolve("strategies=opm") == "opm" and g.resolve("opm.q_base=1") is None


def test_compare_package_imports_neither_torch_nor_db_nor_streamlit() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, bml_core.compare, bml_core.compare.published, bml_core.compare.report; "
        "print(sorted(m for m in ('torch', 'sqlalchemy', 'streamlit', 'db') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_setting_with_no_finished_run_is_a_group_with_n_0() -> None:
    runs = [run(cfg([], s)) for s in (0, 1)] + [run(cfg(["opm"], s), status="running") for s in (0, 1)]
    g = group_runs(runs)
    assert [(x.label, x.n, len(x.excluded)) for x in g.groups] == [
        ("joint", 2, 0),
        ("opm", 0, 2),
    ]
    assert default_baseline(g) == "joint"
