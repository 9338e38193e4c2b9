"""Shared fixtures. Services (Redis, PostgreSQL) are started by scripts/ensure_services.sh
when missing; tests that must stop a service start their own on a test-owned port."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own BML_HOME so nothing leaks into the repository."""
    home = tmp_path / "bml_home"
    monkeypatch.setenv("BML_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def bml_exe() -> str:
    exe = VENV_BIN / "bml"
    return str(exe) if exe.exists() else "bml"


@pytest.fixture(scope="session")
def single_thread() -> None:
    import torch

    torch.set_num_threads(1)


os.environ.setdefault("PYTHONHASHSEED", "0")
