"""Fusion heads. Each maps per-modality features to fused logits z and provides the
uni-modal logits u_m of METHODS.md section 2 (the imbalance probe)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bml_core.plugins import fusion_specs, get_fusion, unknown_message
from bml_core.schema import ConfigError

Features = dict[str, torch.Tensor]


class FusionHead(nn.Module):
    modalities: list[str]

    def forward(self, feats: Features) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def unimodal_logits(self, feats: Features) -> Features:
        """Default (non-additive heads): zero-out, u_m = f(h with every other modality set to 0)."""
        out: Features = {}
        for m in self.modalities:
            out[m] = self.forward({k: (v if k == m else torch.zeros_like(v)) for k, v in feats.items()})
        return out


class ConcatFusion(FusionHead):
    """z = W [h_1; ..; h_M] + b; u_m = W_m h_m + b / M, so sum_m u_m = z exactly."""

    def __init__(self, dims: dict[str, int], num_classes: int):
        super().__init__()
        self.modalities = list(dims)
        self.dims = dims
        self.fc = nn.Linear(sum(dims.values()), num_classes)
        offsets, start = {}, 0
        for m, d in dims.items():
            offsets[m] = (start, start + d)
            start += d
        self.offsets = offsets

    def forward(self, feats: Features) -> torch.Tensor:
        return self.fc(torch.cat([feats[m] for m in self.modalities], dim=1))

    def unimodal_logits(self, feats: Features) -> Features:
        w, b = self.fc.weight, self.fc.bias
        share = b / len(self.modalities)
        return {m: torch.addmm(share, feats[m], w[:, s:e].t()) for m, (s, e) in self.offsets.items()}


class SumFusion(FusionHead):
    """z = sum_m (W_m h_m + b_m); u_m = W_m h_m + b_m (full own bias, train and eval alike)."""

    def __init__(self, dims: dict[str, int], num_classes: int):
        super().__init__()
        self.modalities = list(dims)
        self.fcs = nn.ModuleDict({m: nn.Linear(d, num_classes) for m, d in dims.items()})

    def forward(self, feats: Features) -> torch.Tensor:
        out = self.fcs[self.modalities[0]](feats[self.modalities[0]])
        for m in self.modalities[1:]:
            out = out + self.fcs[m](feats[m])
        return out

    def unimodal_logits(self, feats: Features) -> Features:
        return {m: self.fcs[m](feats[m]) for m in self.modalities}


class FiLMFusion(FusionHead):
    """FiLM (official code, x_film=True for M = 2): the first M-1 modalities predict a scale
    gamma and shift beta applied to the last modality's projected feature."""

    def __init__(self, dims: dict[str, int], num_classes: int, hidden_dim: int = 512):
        super().__init__()
        self.modalities = list(dims)
        cond = self.modalities[:-1]
        self.target = self.modalities[-1]
        self.cond = cond
        self.film = nn.Linear(sum(dims[m] for m in cond), 2 * hidden_dim)
        self.proj = nn.Linear(dims[self.target], hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, num_classes)

    def forward(self, feats: Features) -> torch.Tensor:
        gamma, beta = self.film(torch.cat([feats[m] for m in self.cond], 1)).chunk(2, dim=1)
        return self.fc_out(gamma * self.proj(feats[self.target]) + beta)


class GatedFusion(FusionHead):
    """Gated fusion (official code, x_gate=True for M = 2): the first modality's projection,
    through a sigmoid, gates the sum of the others' projections."""

    def __init__(self, dims: dict[str, int], num_classes: int, hidden_dim: int = 512):
        super().__init__()
        self.modalities = list(dims)
        self.projs = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in dims.items()})
        self.fc_out = nn.Linear(hidden_dim, num_classes)

    def forward(self, feats: Features) -> torch.Tensor:
        gate = torch.sigmoid(self.projs[self.modalities[0]](feats[self.modalities[0]]))
        rest = self.projs[self.modalities[1]](feats[self.modalities[1]])
        for m in self.modalities[2:]:
            rest = rest + self.projs[m](feats[m])
        return self.fc_out(gate * rest)


class SharedHead(FusionHead):
    """`model.head: shared`: one Linear d -> C applied to every modality's feature (all of
    width d); u_m = head(h_m) and the default fused logits z = sum_m u_m (strategies such as
    MLA and ReconBoost fuse differently through on_logits)."""

    def __init__(self, dims: dict[str, int], num_classes: int):
        super().__init__()
        self.modalities = list(dims)
        widths = set(dims.values())
        if len(widths) != 1:
            raise ValueError(f"a shared head needs features of one width, got {dims}")
        self.fc = nn.Linear(widths.pop(), num_classes)
        self.body: nn.Module = nn.Identity()  # use_mlp: Linear(d, hidden) + ReLU before fc

    def use_mlp(self, hidden: int) -> None:
        """Make the head d -> hidden -> ReLU -> C (ReconBoost's authors' `Head`, huacong/ReconBoost
        models/dynamic_net.py L5-15: 512 -> 256 -> C); fresh layers on the old one's device."""
        d, c = self.fc.in_features, self.fc.out_features
        like = self.fc.weight
        self.body = nn.Sequential(nn.Linear(d, hidden), nn.ReLU()).to(like.device, like.dtype)
        self.fc = nn.Linear(hidden, c).to(like.device, like.dtype)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """head(h) for features [..., d]."""
        return self.fc(self.body(h))

    def stacked(self, feats: Features) -> torch.Tensor:
        """head(h_m) for every modality as one [M, B, C] tensor."""
        return self.logits(torch.stack([feats[m] for m in self.modalities]))

    def forward(self, feats: Features) -> torch.Tensor:
        return self.stacked(feats).sum(0)

    def unimodal_logits(self, feats: Features) -> Features:
        return dict(zip(self.modalities, self.stacked(feats).unbind(0), strict=True))


def build_fusion(
    name: str, dims: dict[str, int], num_classes: int, params: Mapping[str, Any] | None = None
) -> FusionHead:
    """The fusion head from its registered spec (built-in or plug-in), with its parameters
    (`model.fusion_params`, parsed by the spec's model) as keyword arguments."""
    spec = get_fusion(name)
    if spec is None:
        raise ConfigError([("model.fusion", unknown_message("fusion head", name, list(fusion_specs())))])
    try:
        cls = spec.load_impl()
    except ImportError as exc:
        raise ConfigError([("model.fusion", str(exc))]) from None
    return cls(dims, num_classes, **spec.parse(params).model_dump())
