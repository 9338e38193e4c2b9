"""Loader throughput and preparation cost of the raw-layout datasets, on generated fixtures
with real-sized frames (bml_core.data.tiny_layouts).

For each of cremad, kinetics_sounds and ucf101:
- direct loading: samples per second through a DataLoader (batch 16, training mode: random
  frames and augmentation) over the whole train split, with 0 and 2 workers; the median of
  `--rounds` passes after one warm-up pass;
- `bml data prepare`: wall time per clip to encode every clip into an .h5 features file;
- reading the prepared file back (the `features` dataset, in memory): samples per second.

    .venv/bin/python bench/data_loaders.py [--clips-per-class 16] [--rounds 3]

torch runs with one thread in the main process (DataLoader workers use one each)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bml_core.config import DatasetConfig  # noqa: E402
from bml_core.data import TensorDataset, build_dataset  # noqa: E402
from bml_core.data.prepare import prepare_features  # noqa: E402
from bml_core.data.tiny_layouts import write_cremad, write_kinetics_sounds, write_ucf101  # noqa: E402

BATCH_SIZE = 16
# Frame sizes like the real data: CREMA-D frames are 480x360, Kinetics and UCF-101 340x256/320x240.
CREMAD_FRAME_PX = (480, 360)
VIDEO_FRAME_PX = (320, 240)


def samples_per_second(ds: torch.utils.data.Dataset, workers: int, rounds: int) -> float:
    ds.training = True  # type: ignore[attr-defined]
    rates = []
    for r in range(rounds + 1):
        ds.set_epoch(r, 0)  # type: ignore[attr-defined]
        loader = DataLoader(ds, batch_size=BATCH_SIZE, shuffle=False, num_workers=workers)
        t0 = time.perf_counter()
        n = sum(int(y.shape[0]) for _, y in loader)
        if r > 0:  # the first pass warms caches and starts workers
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def tensor_samples_per_second(ds: TensorDataset, rounds: int) -> float:
    rates = []
    order = torch.arange(len(ds))
    for _ in range(rounds):
        t0 = time.perf_counter()
        for idx in torch.split(order, BATCH_SIZE):
            ds.get_batch(idx)
        rates.append(len(ds) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips-per-class", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = args.clips_per_class
    with tempfile.TemporaryDirectory(prefix="bml-bench-data-") as tmp:
        base = Path(tmp)
        fixtures = {
            "cremad": (
                write_cremad(base / "cremad", n, 2, frames_per_clip=3, frame_size=CREMAD_FRAME_PX),
                {},
                "1 frame 224 px + 1x257x188 spectrogram",
            ),
            "kinetics_sounds": (
                write_kinetics_sounds(base / "ks", n, 2, 2, frames_per_video=10, frame_size=VIDEO_FRAME_PX),
                {},
                "3 HDF5 frames 112 px + .npy spectrogram",
            ),
            "ucf101": (
                write_ucf101(base / "ucf", n, 2, frames_per_video=10, frame_size=VIDEO_FRAME_PX),
                {},
                "3 RGB + 3x2 flow frames 224 px",
            ),
        }
        print(
            "| dataset | what one sample is | train clips | direct, 0 workers | direct, 2 workers | prepare per clip | prepared file, read |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, (root, params, what) in fixtures.items():
            cfg = DatasetConfig(name=name, path=str(root), params=params, val_fraction=0.15)
            bundle = build_dataset(cfg)
            rate0 = samples_per_second(bundle.train, 0, args.rounds)
            rate2 = samples_per_second(bundle.train, 2, args.rounds)
            dst = base / f"{name}.h5"
            result = prepare_features(name, root, dst, params)
            per_clip_ms = result.seconds / result.rows * 1000
            prepared = build_dataset(DatasetConfig(name="features", path=str(dst)))
            assert isinstance(prepared.train, TensorDataset)
            read_rate = tensor_samples_per_second(prepared.train, args.rounds)
            print(
                f"| {name} | {what} | {len(bundle.train)} | {rate0:.0f} samples/s | {rate2:.0f} samples/s | "
                f"{per_clip_ms:.1f} ms ({result.rows} clips in {result.seconds:.1f} s) | {read_rate:,.0f} samples/s |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
