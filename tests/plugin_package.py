"""The example plug-in package examples/plugins (one encoder, one fusion head, one dataset)
installed for a test: `pip install --target DIR` (offline: the venv's setuptools, no build
isolation), so that a process sees it when DIR is on its PYTHONPATH (the dist-info there
carries the entry points) and lacks it otherwise; the test venv itself is left untouched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bml_core import plugins

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "plugins"
DIST = "bml-example-plugins"
CONFIG = PACKAGE / "two-rings.yaml"


def install(target: Path) -> Path:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(target), str(PACKAGE)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "bml_example_plugins" / "encoder.py").is_file()
    return target


def installed_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """For a fixture to `yield from`: the package installed under tmp_path, on sys.path and
    discovered for the test; afterwards off sys.path and forgotten again."""
    target = install(tmp_path / "plugin-package")
    monkeypatch.syspath_prepend(str(target))
    plugins.discover(refresh=True)
    yield target
    monkeypatch.undo()
    plugins.discover(refresh=True)
