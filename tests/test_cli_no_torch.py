"""`bml submit` (and `bml strategies`) never load torch: a fresh interpreter runs the command
against a migrated SQLite store with the embedded broker, then must not have torch in
sys.modules (ARCHITECTURE.md; issue 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BML = str(Path(sys.executable).parent / "bml")

PROBE = r"""
import json, sys
from bml_cli.main import app
sys.argv = ["bml", *sys.argv[2:]]
try:
    app()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
with open(RESULT, "w") as f:
    json.dump({"code": code, "torch": "torch" in sys.modules}, f)
"""


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    env = {**os.environ, "BML_HOME": str(home), "BML_RUNS_DIR": str(home / "runs"), "BML_BROKER_URL": ""}
    env.pop("BML_DATABASE_URL", None)
    r = subprocess.run([BML, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return env


def run_probe(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    result = tmp_path / "result.json"
    code = PROBE.replace("RESULT", repr(str(result)))
    proc = subprocess.run(
        [sys.executable, "-c", code, "--", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.exists(), proc.stderr[-3000:]
    return json.loads(result.read_text()), proc


def test_bml_submit_never_imports_torch(store_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: nt\ntrain: {epochs: 1}\nstrategies: [opm, ogm_ge]\n")
    ok, proc = run_probe(store_env, tmp_path, "submit", str(cfg), "--seeds", "0,1")
    assert ok == {"code": 0, "torch": False}, proc.stderr
    assert len(proc.stdout.split()) == 2  # two run ids
    bad, proc = run_probe(store_env, tmp_path, "submit", str(cfg), "--set", "strategies.0.p_exe=3")
    assert bad == {"code": 2, "torch": False} and "strategies.0.p_exe" in proc.stderr


def test_bml_strategies_never_imports_torch(tmp_path: Path) -> None:
    out, proc = run_probe(dict(os.environ), tmp_path, "strategies", "--json")
    assert out == {"code": 0, "torch": False}, proc.stderr
    names = [s["name"] for s in json.loads(proc.stdout)["strategies"]]
    assert names[0] == "joint" and {"ogm", "ogm_ge", "opm"} <= set(names)
