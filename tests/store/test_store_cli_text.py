"""`bml runs` never passes stored control characters (terminal escape codes) to the
terminal, even for rows written before names were validated (issue 15 item 5)."""

from __future__ import annotations

import subprocess

from sqlalchemy import Engine, update

import db
from db.models import Run


def test_bml_runs_strips_control_characters(engine: Engine, bml_exe: str) -> None:
    run_id = db.create_run(engine, {"name": "plain", "group": "g"})
    with engine.begin() as conn:  # as an older release could have stored it
        conn.execute(update(Run).where(Run.id == run_id).values(name="evil\x1b[2J\x1b]0;pwn\x07name"))
    r = subprocess.run([bml_exe, "runs"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "evil" in r.stdout and "name" in r.stdout
    assert not any(ord(c) < 32 and c != "\n" for c in r.stdout)
    j = subprocess.run([bml_exe, "runs", "--json"], capture_output=True, text=True, timeout=60)
    assert "\x1b" not in j.stdout  # JSON escapes it (\u001b)


def test_control_characters_are_refused_by_the_store_too(engine: Engine) -> None:
    """name/group/tags given to create_run directly (retry, sweeps) on SQLite and PostgreSQL:
    a NUL byte is a clear ValueError, never a database error."""
    import pytest

    for kwargs in ({"name": "a\x00b"}, {"group": "g\x1b[2J"}, {"tags": ["t\x00"]}):
        with pytest.raises(ValueError, match="control characters"):
            db.create_run(engine, {"name": "ok"}, **kwargs)  # type: ignore[arg-type]
    assert db.list_runs(engine).total == 0
