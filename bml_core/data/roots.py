"""Where the dashboard and the worker may read datasets from: `BML_DATA_ROOTS`, a
colon-separated list of directories (CONTRACT.md); when it is unset, only
`$BML_HOME/data` (default `./.bml/data`). A dataset path outside every root is refused
with a message that names the roots. (`bml train` in-process reads anywhere.)"""

from __future__ import annotations

import os
from pathlib import Path

from bml_core.data.base import DatasetError

DATA_ROOTS_ENV = "BML_DATA_ROOTS"


def default_data_root() -> Path:
    return Path(os.environ.get("BML_HOME", ".bml")).expanduser() / "data"


def data_roots(value: str | None = None) -> list[Path]:
    """The allowed roots, resolved (symlinks followed). `value` overrides the environment;
    empty entries are ignored; no entry at all means the default root."""
    raw = os.environ.get(DATA_ROOTS_ENV, "") if value is None else value
    roots = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    return [p.resolve() for p in (roots or [default_data_root()])]


def check_data_path(path: str | os.PathLike[str], roots: list[Path] | None = None) -> Path:
    """`path` resolved (`..` and symlinks followed) when it lies inside one of the roots;
    otherwise a DatasetError (field `dataset.path`) that lists the allowed roots."""
    allowed = data_roots() if roots is None else [Path(r).expanduser().resolve() for r in roots]
    raw = Path(path).expanduser()
    resolved = raw.resolve()
    for root in allowed:
        if resolved == root or root in resolved.parents:
            return resolved
    listed = ", ".join(str(r) for r in allowed)
    how = (
        f"{DATA_ROOTS_ENV}={os.environ[DATA_ROOTS_ENV]}"
        if os.environ.get(DATA_ROOTS_ENV, "").strip()
        else f"{DATA_ROOTS_ENV} is unset, so only {listed}"
    )
    raise DatasetError(
        f"{raw} is outside the dataset directories this server may read ({how}); move the data "
        f"under one of [{listed}], or add its directory to {DATA_ROOTS_ENV} (colon-separated) and "
        "restart the dashboard and worker",
        field="dataset.path",
        path=str(raw),
    )
