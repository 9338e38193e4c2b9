"""bml_core.configpaths: the one config flattener and diff, shared by the store's config diff
and the Compare grouping."""

from __future__ import annotations

from bml_core.configpaths import diff_configs, flatten_config


def test_flatten_lists_and_leaves() -> None:
    cfg = {"a": {"b": [1, {"c": 2}]}, "e": {}, "f": [], "g": None}
    assert flatten_config(cfg) == {"a.b.0": 1, "a.b.1.c": 2, "e": {}, "f": [], "g": None}
    assert flatten_config({"lr": 0.1}, "optim") == {"optim.lr": 0.1}


def test_diff_keeps_differing_and_missing_paths() -> None:
    a = {"optim": {"lr": 0.1, "name": "sgd"}, "strategies": [{"name": "ogm_ge", "alpha": 0.5}]}
    b = {"optim": {"lr": 0.01, "name": "sgd"}, "strategies": [{"name": "ogm_ge", "alpha": 0.5}], "x": 1}
    assert diff_configs({1: a, 2: b}) == {"optim.lr": {1: 0.1, 2: 0.01}, "x": {2: 1}}
    assert diff_configs({1: a, 2: a}) == {}


def test_store_and_grouping_use_it() -> None:
    import db
    from bml_core import configpaths
    from bml_core.compare import grouping

    assert db.flatten_config is flatten_config and db.queries.diff_configs is diff_configs
    assert grouping.flatten_into is configpaths.flatten_into
    paths = grouping.config_paths({"strategies": [{"name": "ogm_ge", "alpha": 0.3}], "seed": 0})
    assert paths["ogm_ge.alpha"] == 0.3 and paths["strategies.0.alpha"] == 0.3
    assert paths["strategies"] == "ogm_ge"


def test_lists_stay_whole_when_asked() -> None:
    cfg = {"train": {"milestones": [10, 20], "optim": {"lr": 0.1}}}
    assert flatten_config(cfg) == {"train.milestones.0": 10, "train.milestones.1": 20, "train.optim.lr": 0.1}
    assert flatten_config(cfg, lists=False) == {"train.milestones": [10, 20], "train.optim.lr": 0.1}
    assert flatten_config(cfg["train"], "train", lists=False) == {
        "train.milestones": [10, 20],
        "train.optim.lr": 0.1,
    }
