"""bml_core.provenance: file fingerprints (sha256, cached by path, size and mtime), the
torch-free environment, and what `bml rerun` reports as changed (blocking: data files and
major versions; notes: the rest)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from bml_core import provenance


def test_fingerprint_is_sha256_and_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "d.bin"
    f.write_bytes(b"abc" * 1000)
    cache = tmp_path / "cache.json"
    fp = provenance.file_fingerprint(f, cache)
    assert fp == {"path": str(f.resolve()), "size": 3000, "sha256": hashlib.sha256(b"abc" * 1000).hexdigest()}
    assert list(json.loads(cache.read_text()).values()) == [fp["sha256"]]
    # same size and mtime: the cached hash is used (the file is not read again)
    st = f.stat()
    f.write_bytes(b"xyz" * 1000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert provenance.file_fingerprint(f, cache)["sha256"] == fp["sha256"]
    # a new mtime: hashed again, and the stale entry dropped
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert provenance.file_fingerprint(f, cache)["sha256"] == hashlib.sha256(b"xyz" * 1000).hexdigest()
    assert len(json.loads(cache.read_text())) == 1


def test_static_environment_needs_no_torch() -> None:
    env = provenance.static_environment()
    assert env["python"] and env["host"] and env["packages"]["numpy"]
    assert set(env) >= {"project_version", "git", "platform", "packages"}
    git = env["git"]
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))


def test_compare_blocks_on_data_and_major_versions_only() -> None:
    base = {
        "python": "3.11.9",
        "packages": {"torch": "2.13.0", "numpy": "2.1.0"},
        "project_version": "0.1.0",
        "git": {"commit": "a" * 40, "dirty": False},
        "data": [{"path": "/d/f.npz", "size": 3, "sha256": "1" * 64}],
    }
    same = json.loads(json.dumps(base))
    assert provenance.compare(base, same) == ([], [])
    minor = json.loads(json.dumps(base))
    minor["packages"]["numpy"] = "2.2.0"
    minor["python"] = "3.11.10"
    minor["git"] = {"commit": "b" * 40, "dirty": True}
    blocking, notes = provenance.compare(base, minor)
    assert blocking == []
    assert notes == [
        "Python 3.11.9 -> 3.11.10",
        "numpy 2.1.0 -> 2.2.0",
        f"code commit {'a' * 40} -> {'b' * 40}",
    ]
    major = json.loads(json.dumps(base))
    major["packages"]["torch"] = "3.0.0"
    major["python"] = "3.12.1"
    major["data"] = [{"path": "/d/f.npz", "size": 3, "sha256": "2" * 64}]
    blocking, _ = provenance.compare(base, major)
    assert blocking == [
        "Python 3.11.9 -> 3.12.1",
        "torch 2.13.0 -> 3.0.0",
        "data file /d/f.npz changed (sha256 111111111111… -> 222222222222…)",
    ]
    gone = {**base, "data": []}
    assert provenance.compare(base, gone)[0] == ["data file /d/f.npz is missing"]
    assert provenance.compare(None, base) == (
        [],
        ["the original run recorded no environment (it ran before this was recorded)"],
    )
    # a local build tag (+cpu) is not a difference
    tagged = json.loads(json.dumps(base))
    tagged["packages"]["torch"] = "2.13.0+cpu"
    assert provenance.compare(base, tagged) == ([], [])
