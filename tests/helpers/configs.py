"""Small synthetic run configs the trainer and strategy tests build on: `small` (two MLP
modalities, 360 samples, two epochs) and `small_cnn` (the same with two 8x8 modalities on
`cnn` encoders, whose BatchNorm the reference comparisons need), plus `bn_buffers`."""

from __future__ import annotations

import copy
from typing import Any

import torch

SMALL: dict[str, Any] = {
    "dataset": {
        "params": {
            "num_samples": 360,
            "modalities": [
                {"name": "audio", "strength": 1.5, "shape": [16]},
                {"name": "visual", "strength": 0.6, "shape": [8]},
            ],
        }
    },
    "model": {"feature_dim": 16, "encoders": {"audio": {"hidden_dim": 32}, "visual": {"hidden_dim": 32}}},
    "optim": {"lr": 0.05, "scheduler": {"name": "none"}},
    "train": {"epochs": 2, "batch_size": 32, "threads": 1},
}
# the SGD of the authors' CREMA-D scripts the reference comparisons run with
SGD_MOMENTUM: dict[str, Any] = {
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "scheduler": {"name": "none"},
}


def small(**over: Any) -> dict[str, Any]:
    """SMALL with top-level sections updated (dicts) or replaced (anything else)."""
    raw = copy.deepcopy(SMALL)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k].update(v)
        else:
            raw[k] = v
    return raw


def small_cnn(num_samples: int | None = None, **over: Any) -> dict[str, Any]:
    """small(**over) with 8x8 audio and visual inputs on `cnn` (BatchNorm) encoders."""
    raw = small(**over)
    if num_samples is not None:
        raw["dataset"]["params"]["num_samples"] = num_samples
    raw["dataset"]["params"]["modalities"] = [
        {"name": "audio", "strength": 1.5, "shape": [8, 8]},
        {"name": "visual", "strength": 0.6, "shape": [8, 8]},
    ]
    raw["model"]["encoders"] = {"audio": {"name": "cnn"}, "visual": {"name": "cnn"}}
    return raw


def bn_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the model's BatchNorm running statistics."""
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
