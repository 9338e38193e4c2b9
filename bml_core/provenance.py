"""What a run ran on, so that it can be rerun exactly: the project version and git commit
(with a dirty flag, when run from a checkout), Python, torch, numpy, CUDA/cuDNN, the
platform, the GPU and the worker host, and a sha256 fingerprint of each data file read.

`static_environment()` and `file_fingerprint()` need no torch (the CLI's `bml rerun` uses
them to check before queueing); `runtime_environment()` adds what only the training
process knows (CUDA, cuDNN, GPU name) and imports torch. Fingerprints are cached in
`$BML_HOME/fingerprints.json` by path, size and modification time, so a large features
file is hashed once until it changes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("bml-studio", "torch", "numpy")
FINGERPRINT_CACHE = "fingerprints.json"
git_timeout_s = 5.0
hash_chunk_bytes = 1 << 20
CHECKOUT = Path(__file__).resolve().parents[1]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_state(root: Path = CHECKOUT) -> dict[str, Any] | None:
    """{"commit": sha, "dirty": bool} when `root` is a git checkout with git installed."""
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=git_timeout_s, check=True,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=git_timeout_s, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def static_environment() -> dict[str, Any]:
    """Versions, commit, platform and host, without importing torch."""
    return {
        "project_version": _version("bml-studio"),
        "git": git_state(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES if name != "bml-studio"},
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "executable": sys.executable,
    }


def runtime_environment(device: str | None = None) -> dict[str, Any]:
    """`static_environment()` plus torch's own view: its version, CUDA, cuDNN, the GPU."""
    import torch

    env = static_environment()
    env["packages"]["torch"] = torch.__version__
    cuda_ok = torch.cuda.is_available()
    env["cuda"] = torch.version.cuda
    env["cudnn"] = torch.backends.cudnn.version() if cuda_ok else None
    env["gpu"] = torch.cuda.get_device_name(0) if cuda_ok else None
    env["device"] = device
    env["torch_threads"] = torch.get_num_threads()
    return env


def _cache_path() -> Path:
    return Path(os.environ.get("BML_HOME", ".bml")).resolve() / FINGERPRINT_CACHE


def file_fingerprint(path: str | os.PathLike[str], cache: Path | None = None) -> dict[str, Any]:
    """{"path", "size", "sha256"} of a file; the hash is reused while the file's path,
    size and modification time are unchanged."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache = cache or _cache_path()
    known: dict[str, str] = {}
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    digest = known.get(key)
    if digest is None:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(hash_chunk_bytes), b""):
                h.update(chunk)
        digest = h.hexdigest()
        known = {k: v for k, v in known.items() if not k.startswith(f"{p}|")}
        known[key] = digest
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(cache)
        except OSError:
            pass  # the cache is an optimisation
    return {"path": str(p), "size": st.st_size, "sha256": digest}


def data_fingerprints(dataset_path: str | None) -> list[dict[str, Any]]:
    """Fingerprints of the data files a run reads (its `dataset.path` when it is a file;
    every file under it when it is a folder)."""
    if not dataset_path:
        return []
    p = Path(dataset_path)
    if p.is_file():
        return [file_fingerprint(p)]
    if p.is_dir():
        return [file_fingerprint(f) for f in sorted(p.rglob("*")) if f.is_file()]
    return []


def _major(version: str | None) -> str | None:
    if not version:
        return None
    return version.split("+")[0].split(".")[0]


def compare(recorded: dict[str, Any] | None, current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(blocking, notes): what differs between a run's recorded environment and `current`
    (as `static_environment()` plus `data`). Blocking: a data file changed or is missing, or
    a package's major version (Python's major.minor) differs. Notes: other differences."""
    if not recorded:
        return [], ["the original run recorded no environment (it ran before this was recorded)"]
    blocking: list[str] = []
    notes: list[str] = []
    old_py, new_py = recorded.get("python"), current.get("python")
    if old_py and new_py and old_py.split(".")[:2] != new_py.split(".")[:2]:
        blocking.append(f"Python {old_py} -> {new_py}")
    elif old_py != new_py:
        notes.append(f"Python {old_py} -> {new_py}")
    old_pk, new_pk = recorded.get("packages") or {}, current.get("packages") or {}
    for name in sorted(set(old_pk) | set(new_pk)):
        a, b = old_pk.get(name), new_pk.get(name)
        if a == b or (a and b and a.split("+")[0] == b.split("+")[0]):
            continue
        (blocking if _major(a) != _major(b) else notes).append(f"{name} {a} -> {b}")
    if recorded.get("project_version") != current.get("project_version"):
        notes.append(f"bml-studio {recorded.get('project_version')} -> {current.get('project_version')}")
    old_git, new_git = recorded.get("git") or {}, current.get("git") or {}
    if old_git.get("commit") != new_git.get("commit"):
        notes.append(f"code commit {old_git.get('commit')} -> {new_git.get('commit')}")
    if old_git.get("dirty"):
        notes.append("the original ran from a checkout with uncommitted changes")
    new_data = {d["path"]: d for d in current.get("data") or []}
    for old in recorded.get("data") or []:
        now = new_data.get(old["path"])
        if now is None:
            blocking.append(f"data file {old['path']} is missing")
        elif now["sha256"] != old["sha256"]:
            blocking.append(
                f"data file {old['path']} changed (sha256 {old['sha256'][:12]}… -> {now['sha256'][:12]}…)"
            )
    for key in ("gpu", "cuda", "cudnn"):
        if key in current and recorded.get(key) != current.get(key):
            notes.append(f"{key} {recorded.get(key)} -> {current.get(key)}")
    return blocking, notes
