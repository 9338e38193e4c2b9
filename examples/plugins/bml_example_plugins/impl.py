"""The example plug-ins' implementations (torch): imported only when a run builds them."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bml_core.data.base import DatasetBundle, split_tensor_dataset
from bml_core.models.fusion import FusionHead
from bml_core.schema import DatasetConfig, EncoderConfig
from bml_example_plugins.dataset import TwoRingsParams
from bml_example_plugins.encoder import ResidualMLPParams


class ResidualMLP(nn.Module):
    def __init__(self, in_dim: int, width: int, blocks: int, out_dim: int):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU()) for _ in range(blocks)
        )
        self.out = nn.Linear(width, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def build_residual_mlp(shape: tuple[int, ...], cfg: EncoderConfig, feature_dim: int) -> nn.Module:
    p = ResidualMLPParams.model_validate(cfg.params)
    return ResidualMLP(int(np.prod(shape)), p.width, p.blocks, feature_dim)


class WeightedSumFusion(FusionHead):
    """z = sum_m w_m (W_m h_m + b_m), w = softmax(a / temperature); u_m = w_m (W_m h_m + b_m)."""

    def __init__(self, dims: dict[str, int], num_classes: int, temperature: float = 1.0):
        super().__init__()
        self.modalities = list(dims)
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in dims.items()})
        self.logit_weights = nn.Parameter(torch.zeros(len(dims)))
        self.temperature = temperature

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logit_weights / self.temperature, dim=0)

    def unimodal_logits(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        w = self.weights()
        return {m: w[i] * self.heads[m](feats[m]) for i, m in enumerate(self.modalities)}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(self.unimodal_logits(feats).values())).sum(0)


def make_two_rings(p: TwoRingsParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(p.data_seed)
    y = rng.integers(0, p.num_classes, p.num_samples)
    angle = rng.uniform(0, 2 * np.pi, p.num_samples)
    radius = 1.0 + y + rng.normal(0, 0.15, p.num_samples)
    ring = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    protos = rng.standard_normal((p.num_classes, p.blob_dim))
    blob = rng.standard_normal((p.num_samples, p.blob_dim)) + p.blob_strength * protos[y]
    return ring.astype(np.float32), blob.astype(np.float32), y.astype(np.int64)


def build_two_rings(cfg: DatasetConfig) -> DatasetBundle:
    p = TwoRingsParams.model_validate(cfg.params)
    ring, blob, y = make_two_rings(p)
    x = {"ring": torch.from_numpy(ring), "blob": torch.from_numpy(blob)}
    train, val, test = split_tensor_dataset(x, torch.from_numpy(y), None, cfg, p.data_seed, "two_rings")
    return DatasetBundle(
        name="two_rings",
        train=train,
        val=val,
        test=test,
        input_shapes={"ring": (2,), "blob": (p.blob_dim,)},
        num_classes=p.num_classes,
        class_names=[f"ring{i}" for i in range(p.num_classes)],
    )
