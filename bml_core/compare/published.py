"""Published numbers to show beside ours (METHODS.md section 9, STRATEGIES.md section 5):
fused test accuracy in percent as each source reports it, with the source, its backbone
and its protocol. For calibration only: never used by a test of our training.

`strategy` is our strategy label for the method (as `runs.strategy`: `joint`, `ogm_ge`,
`opm+ogm_ge`, ...) where we have it, else None (uni-modal baselines, methods not built)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

BB_SOURCE = "BalanceBenchmark (arXiv 2502.10816)"
BB_PROTOCOL = "BalanceBenchmark's implementation and protocol (one protocol for all methods)"
BB_BACKBONE = "ResNet-18 encoders trained from scratch"
CVPR_SOURCE = "OGM-GE, CVPR 2022 (as quoted in issue threads)"
CVPR_PROTOCOL = "the paper's protocol, concat fusion"
CVPR_BACKBONE = "ResNet-18 audio and visual encoders"
REPRO_SOURCE = "independent 5-seed CREMA-D reproduction"
REPRO_PROTOCOL = "T-PAMI 2024 presets, mean of 5 seeds"
REPRO_BACKBONE = "not stated"

# Datasets by our dataset name; the sources' names in the comments.
CREMAD, KS, UCF, MOSEI = "cremad", "kinetics_sounds", "ucf101", "cmu_mosei"


@dataclass(frozen=True)
class Published:
    """One published number: fused accuracy in percent, as the source reports it."""

    dataset: str
    method: str  # as the source names it
    strategy: str | None  # our strategy label, when we implement the method
    accuracy_pct: float
    source: str
    protocol: str
    backbone: str
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bb(
    method: str, strategy: str | None, cremad: float, ks: float, note: str | None = None
) -> list[Published]:
    return [
        Published(CREMAD, method, strategy, cremad, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE, note),
        Published(KS, method, strategy, ks, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE, note),
    ]


_DIFFERS = "BalanceBenchmark's code for this method differs from the paper's (STRATEGIES.md section 2)"

PUBLISHED: tuple[Published, ...] = (
    # BalanceBenchmark, CREMA-D / Kinetics-Sounds (STRATEGIES.md section 5)
    *_bb("audio only", None, 59.38, 55.06),
    *_bb("visual only", None, 58.10, 45.31),
    *_bb("joint", "joint", 65.50, 65.63),
    *_bb("OGM", "ogm_ge", 67.76, 67.04),
    *_bb("OPM", "opm", 68.75, 66.89),
    *_bb("G-Blending", "gblending", 71.59, 68.82, _DIFFERS),
    *_bb("PMR", "pmr", 67.19, 67.11, _DIFFERS),
    *_bb("AGM", "agm", 71.59, 66.62, _DIFFERS),
    *_bb("MMCosine", "mmcosine", 67.19, 67.49),
    *_bb("Greedy", None, 66.48, 66.82),
    *_bb("UMT", None, 67.47, 68.60),
    *_bb("MLA", "mla", 72.30, 69.05, _DIFFERS),
    *_bb("ReconBoost", "reconboost", 74.01, 68.38),
    *_bb(
        "MMPareto",
        "mmpareto",
        79.97,
        74.55,
        "as BalanceBenchmark computes it (STRATEGIES.md 2.1); " + _DIFFERS,
    ),
    *_bb("Diagnosing & Re-learning", "relearn", 71.02, 65.92),
    *_bb("LFM", None, 70.02, 66.37),
    # BalanceBenchmark, UCF-101 and CMU-MOSEI (METHODS.md section 9)
    Published(UCF, "joint", "joint", 81.80, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE),
    Published(UCF, "OGM", "ogm_ge", 82.07, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE),
    Published(UCF, "OPM", "opm", 85.28, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE),
    Published(MOSEI, "joint", "joint", 78.99, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE),
    Published(MOSEI, "OGM", "ogm_ge", 80.45, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE),
    Published(MOSEI, "OPM", "opm", 79.95, BB_SOURCE, BB_PROTOCOL, BB_BACKBONE),
    # The OGM-GE paper on CREMA-D (METHODS.md section 9)
    Published(CREMAD, "concat baseline", "joint", 51.7, CVPR_SOURCE, CVPR_PROTOCOL, CVPR_BACKBONE),
    Published(CREMAD, "OGM-GE", "ogm_ge", 61.9, CVPR_SOURCE, CVPR_PROTOCOL, CVPR_BACKBONE),
    # An independent reproduction on CREMA-D (METHODS.md section 9)
    Published(CREMAD, "baseline", "joint", 59.2, REPRO_SOURCE, REPRO_PROTOCOL, REPRO_BACKBONE),
    Published(CREMAD, "OGM", "ogm_ge", 63.7, REPRO_SOURCE, REPRO_PROTOCOL, REPRO_BACKBONE),
    Published(CREMAD, "OPM", "opm", 65.4, REPRO_SOURCE, REPRO_PROTOCOL, REPRO_BACKBONE),
    Published(CREMAD, "OPM+OGM", "opm+ogm_ge", 69.8, REPRO_SOURCE, REPRO_PROTOCOL, REPRO_BACKBONE),
)

UNIMODAL_METHODS = ("audio only", "visual only")

_ALIASES = {"crema-d": CREMAD, "crema_d": CREMAD, "kinetics-sounds": KS, "ks": KS, "ucf-101": UCF}


def dataset_key(name: str) -> str:
    """Our dataset name for a spelling of it (`CREMA-D`, `kinetics-sounds`, ...)."""
    low = name.strip().lower()
    return _ALIASES.get(low, low)


def published_for(dataset: str, strategies: list[str] | None = None) -> list[Published]:
    """The published rows for a dataset (empty when no source reports it), in the table's
    order (source by source); with `strategies`, only the methods we ran."""
    key = dataset_key(dataset)
    rows = [p for p in PUBLISHED if p.dataset == key]
    if strategies is not None:
        rows = [p for p in rows if p.strategy in strategies]
    return rows
