"""Fixtures of the dataset tests: tiny raw datasets in the exact on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bml_core.data.tiny_layouts import write_cremad, write_kinetics_sounds, write_ucf101


@pytest.fixture
def cremad_root(tmp_path: Path) -> Path:
    return write_cremad(tmp_path / "cremad")


@pytest.fixture
def ks_root(tmp_path: Path) -> Path:
    return write_kinetics_sounds(tmp_path / "ks")


@pytest.fixture
def ucf_root(tmp_path: Path) -> Path:
    return write_ucf101(tmp_path / "ucf")
