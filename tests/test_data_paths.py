"""Issue 15 item 1: every path a dataset reads (dataset.path and each path parameter the
dataset's spec declares) is resolved and checked against BML_DATA_ROOTS at submit and again
by the worker before any file is opened; the error never shows the file's content."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import db
from bml_core.config import ConfigError
from bml_core.dataspecs import DATASET_PARAMS, check_dataset_paths, path_params
from bml_core.errors import DatasetError
from services.actions import prepare
from worker.run_process import _train

SECRET = "TOPSECRET-LINE,HAP"
CASES = [
    (name, param) for name, model in sorted(DATASET_PARAMS.items()) for param in sorted(path_params(model))
]


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    root = tmp_path / "data"
    ds = root / "ds"
    ds.mkdir(parents=True)
    secret = tmp_path / "secret.csv"
    secret.write_text(SECRET + "\n")
    (ds / "link.csv").symlink_to(secret)
    monkeypatch.setenv("BML_DATA_ROOTS", str(root))
    return {"root": root, "ds": ds, "secret": secret}


def _values(layout: dict[str, Path]) -> dict[str, str]:
    return {
        "dotdot": "../../secret.csv",
        "absolute": str(layout["secret"]),
        "symlink": "link.csv",
    }


def test_every_dataset_with_files_declares_its_path_params() -> None:
    assert {"cremad", "kinetics_sounds", "ucf101"} <= set(DATASET_PARAMS)
    assert path_params(DATASET_PARAMS["cremad"]) == {
        "audio_dir": "relative",
        "frames_dir": "relative",
        "train_list": "relative",
        "test_list": "relative",
    }
    assert path_params(DATASET_PARAMS["kinetics_sounds"])["trust_pickle"] == "as_is"


@pytest.mark.parametrize(("dataset", "param"), CASES)
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_a_path_param_outside_the_roots_is_refused_at_submit(
    layout: dict[str, Path], dataset: str, param: str, how: str
) -> None:
    value: object = _values(layout)[how]
    kind = path_params(DATASET_PARAMS[dataset])[param]
    if kind == "as_is":
        value = [str(layout["ds"] / str(value)) if how != "absolute" else str(value)]
    cfg = {"dataset": {"name": dataset, "path": str(layout["ds"]), "params": {param: value}}}
    with pytest.raises(ConfigError) as exc:
        prepare(cfg)
    errors = exc.value.as_dict()
    field = f"dataset.params.{param}" + (".0" if kind == "as_is" else "")
    assert field in errors, errors
    assert "outside the dataset directories" in errors[field]
    assert "TOPSECRET" not in str(exc.value)


@pytest.mark.parametrize("dataset", sorted(DATASET_PARAMS))
def test_paths_inside_the_roots_pass(layout: dict[str, Path], dataset: str) -> None:
    checked = check_dataset_paths(
        prepare({"dataset": {"name": dataset, "path": str(layout["ds"])}})[0].dataset
    )
    assert checked["dataset.path"] == layout["ds"].resolve()
    assert all(layout["root"].resolve() in p.parents for f, p in checked.items() if f != "dataset.path")


def test_dataset_path_itself_via_dotdot_and_symlink_is_refused(layout: dict[str, Path]) -> None:
    (layout["root"] / "escape").symlink_to(layout["secret"].parent)
    for path in (
        str(layout["ds"] / ".." / ".." / "secret.csv"),
        str(layout["root"] / "escape" / "secret.csv"),
    ):
        with pytest.raises(ConfigError) as exc:
            prepare({"dataset": {"name": "features", "path": path}})
        assert "dataset.path" in exc.value.as_dict() and "TOPSECRET" not in str(exc.value)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_the_worker_refuses_before_opening_any_file(
    layout: dict[str, Path], tmp_path: Path, how: str
) -> None:
    """A run row that never went through submit (written straight into the store): the run
    process refuses it; the CREMA-D list is never read, so its first line cannot leak."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'bml.db'}")
    db.upgrade(engine)
    try:
        cfg = {
            "dataset": {
                "name": "cremad",
                "path": str(layout["ds"]),
                "params": {"train_list": _values(layout)[how]},
            }
        }
        run_id = db.create_run(engine, cfg)
        assert db.claim_run(engine, run_id, "test")
        with pytest.raises(DatasetError) as exc:
            _train(engine, run_id, threading.Event())
        assert exc.value.field == "dataset.params.train_list"
        assert "TOPSECRET" not in str(exc.value)
    finally:
        engine.dispose()


def test_the_launch_form_shows_a_path_param_outside_the_roots(layout: dict[str, Path]) -> None:
    from app.views.launch.check import check_form
    from app.views.launch.fields import default_values

    values = default_values()
    values.update(
        {
            "dataset.name": "cremad",
            "dataset.path": str(layout["ds"]),
            "dataset.params": "{train_list: ../../secret.csv}",
        }
    )
    check = check_form(values, [], [])
    assert "dataset.params" in check.errors, check.errors
    assert (
        "train_list" in check.errors["dataset.params"] and "TOPSECRET" not in check.errors["dataset.params"]
    )
    values["dataset.params"] = "{train_list: train.csv}"
    assert "dataset.params" not in check_form(values, [], []).errors
