"""Issue 25, the CLI's rough edges: read commands never create a store, a submit that
cannot enqueue stores nothing, unsupported databases and unknown BML_USER are named."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "synthetic-joint.yaml"


def _bml(bml_exe: str, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bml_exe, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env={**os.environ, **env}
    )


def test_read_commands_never_create_a_store(bml_exe: str, tmp_path: Path) -> None:
    home = tmp_path / "nowhere" / ".bml"
    for args in (["events", "7"], ["runs"], ["export", "7"]):
        r = _bml(bml_exe, *args, cwd=tmp_path, BML_HOME=str(home))
        assert r.returncode == 1, (args, r.stderr)
        assert "not migrated" in r.stderr and "bml db upgrade" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / ".bml").exists()


def test_unsupported_database_names_the_supported_ones(bml_exe: str) -> None:
    r = _bml(bml_exe, "runs", BML_DATABASE_URL="mysql://u@localhost/bml")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "MySQLdb" not in r.stderr, r.stderr
    assert "'mysql' databases are not supported" in r.stderr
    assert "sqlite:///" in r.stderr and "postgresql://" in r.stderr


def test_unknown_bml_user_is_refused_on_reads(bml_exe: str) -> None:
    assert _bml(bml_exe, "db", "upgrade").returncode == 0
    assert _bml(bml_exe, "runs").returncode == 0
    r = _bml(bml_exe, "runs", BML_USER="nobody")
    assert r.returncode == 2 and "BML_USER: no user 'nobody'" in r.stderr, r.stderr


def test_submit_against_an_unreachable_broker_stores_nothing(bml_exe: str) -> None:
    assert _bml(bml_exe, "db", "upgrade").returncode == 0
    r = _bml(bml_exe, "submit", str(CONFIG), "--seeds", "0-2", BML_BROKER_URL="redis://127.0.0.1:1/0")
    assert r.returncode == 1 and "127.0.0.1:1" in r.stderr and "nothing was stored" in r.stderr, r.stderr
    runs = _bml(bml_exe, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.strip() == "[]", runs.stdout
