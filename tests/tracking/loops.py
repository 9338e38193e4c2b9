"""A user's own two-modality model and loop (nothing from bml_core), shared by the tests."""

from __future__ import annotations

import torch
from torch import nn


class TinyAV(nn.Module):
    """Two encoders and a linear head over their concatenation (audio first)."""

    def __init__(self, dims: tuple[int, int] = (5, 7), hidden: int = 8, classes: int = 3):
        super().__init__()
        self.audio = nn.Sequential(nn.Linear(dims[0], hidden), nn.ReLU())
        self.visual = nn.Sequential(nn.Linear(dims[1], hidden), nn.ReLU())
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, xa: torch.Tensor, xv: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = {"audio": self.audio(xa), "visual": self.visual(xv)}
        return self.head(torch.cat([feats["audio"], feats["visual"]], 1)), feats


def batches(n: int, batch: int = 16, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.randint(0, 3, (batch,), generator=g)
        xa = torch.randn(batch, 5, generator=g) + y[:, None].float()  # audio: informative
        xv = torch.randn(batch, 7, generator=g)
        out.append((xa, xv, y))
    return out
