"""BML_DATA_ROOTS: the dashboard and worker read datasets only inside the configured roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bml_core.data.base import DatasetError
from bml_core.dataroots import check_data_path, data_roots


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    a, b, outside = tmp_path / "data_a", tmp_path / "data_b", tmp_path / "elsewhere"
    for d in (a, b, outside):
        (d / "set").mkdir(parents=True)
    (outside / "set" / "f.npz").write_bytes(b"x")
    return {"a": a, "b": b, "outside": outside}


def test_paths_inside_any_root_are_allowed(layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BML_DATA_ROOTS", f"{layout['a']}{os.pathsep}{layout['b']}")
    assert check_data_path(layout["a"] / "set" / "f.npz") == (layout["a"] / "set" / "f.npz").resolve()
    assert check_data_path(layout["b"]) == layout["b"].resolve()
    assert data_roots() == [layout["a"].resolve(), layout["b"].resolve()]


def test_outside_paths_are_refused_with_the_roots_named(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BML_DATA_ROOTS", str(layout["a"]))
    with pytest.raises(DatasetError) as err:
        check_data_path(layout["outside"] / "set" / "f.npz")
    msg = str(err.value)
    assert "outside the dataset directories" in msg and str(layout["a"].resolve()) in msg
    assert "BML_DATA_ROOTS" in msg and err.value.field == "dataset.path"


def test_dotdot_and_symlinks_cannot_escape(layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BML_DATA_ROOTS", str(layout["a"]))
    with pytest.raises(DatasetError):
        check_data_path(layout["a"] / ".." / "elsewhere" / "set" / "f.npz")
    link = layout["a"] / "sneaky"
    link.symlink_to(layout["outside"])
    with pytest.raises(DatasetError):
        check_data_path(link / "set" / "f.npz")
    prefix_twin = layout["a"].with_name("data_a_evil")
    prefix_twin.mkdir()
    with pytest.raises(DatasetError):
        check_data_path(prefix_twin)


def test_unset_means_only_bml_home_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BML_DATA_ROOTS", raising=False)
    monkeypatch.setenv("BML_HOME", str(tmp_path / "home"))
    inside = tmp_path / "home" / "data" / "cremad.h5"
    assert check_data_path(inside) == inside.resolve()
    with pytest.raises(DatasetError, match="BML_DATA_ROOTS is unset"):
        check_data_path(tmp_path / "other.h5")
    monkeypatch.setenv("BML_DATA_ROOTS", f" {os.pathsep}{os.pathsep}")
    assert data_roots() == [(tmp_path / "home" / "data").resolve()]
