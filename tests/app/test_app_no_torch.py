"""The dashboard never loads torch (ARCHITECTURE.md): every app module is imported, and
every page is run through AppTest, in a fresh interpreter that then must not have torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bml_core.strategies import discover
from tests.helpers.stored_runs import add_run

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, json, pkgutil, sys
import app
modules = [m.name for m in pkgutil.walk_packages(app.__path__, "app.")
           if m.name != "app.main" and not m.name.endswith(".page")]
for name in modules + ["services.actions", "bml_core.dataroots", "bml_core.config"]:
    importlib.import_module(name)
after_import = "torch" in sys.modules
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
pages = {}
for page in ("overview", "launch", "runs", "live", "compare", "report", "methods", "workers"):
    at.switch_page(f"views/{page}/page.py")
    if page in ("compare", "report"):
        at.query_params["group"] = "g"
    at.run()
    pages[page] = [str(e.value) for e in at.exception]
print(json.dumps({"modules": modules, "after_import": after_import,
                  "after_pages": "torch" in sys.modules, "exceptions": pages}))
"""


def test_no_app_module_or_page_imports_torch(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # with the example strategy plug-in loaded too (its spec must not pull torch in)
    plugins = str(ROOT / "examples" / "plugins")
    monkeypatch.syspath_prepend(plugins)
    monkeypatch.setenv("BML_PLUGINS", "halve_dominant")
    discover(refresh=True)
    add_run(engine, "a", "g", ["ogm_ge"], steps=20)
    add_run(engine, "b", "g", ["opm"], steps=20, status="running")
    add_run(engine, "c", "g", ["halve_dominant"], steps=20, status="running")
    env = {**os.environ, "PYTHONPATH": plugins}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "app" / "main.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    monkeypatch.delenv("BML_PLUGINS")
    discover(refresh=True)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "app.views.launch.fields",
        "app.views.launch.parse",
        "app.views.launch.check",
        "app.views.launch.submit",
        "app.views.live.data",
        "app.views.compare.data",
        "app.views.report.data",
        "app.views.runs.data",
        "app.views.methods.data",
    } <= set(result["modules"])
    assert result["after_import"] is False
    assert result["exceptions"] == {p: [] for p in result["exceptions"]}
    assert result["after_pages"] is False
