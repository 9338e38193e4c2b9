"""Multimodal model = one encoder per modality + a fusion head that also gives uni-modal logits."""

from __future__ import annotations

import torch
from torch import nn

from bml_core.config import ConfigError, ModelConfig
from bml_core.models.encoders import build_encoder, default_encoder_name
from bml_core.models.fusion import FusionHead, SharedHead, build_fusion

__all__ = [
    "FusionHead",
    "MultimodalModel",
    "Projected",
    "SharedHead",
    "build_encoder",
    "build_model",
    "default_encoder_name",
    "official_init",
]


class Projected(nn.Module):
    """An encoder followed by a Linear projection to `out_dim` (`model.head: shared` when the
    encoder's own width differs, e.g. ResNet-18's 512)."""

    def __init__(self, encoder: nn.Module, out_dim: int):
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Linear(int(encoder.out_dim), out_dim)  # type: ignore[arg-type]
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.encoder(x))


class MultimodalModel(nn.Module):
    def __init__(self, encoders: dict[str, nn.Module], fusion: FusionHead):
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.aux_heads: nn.ModuleDict | None = None  # one Linear per modality, on request
        self.extras = nn.ModuleDict()  # modules a strategy adds (e.g. ReconBoost's beta)

    def add_extra(self, name: str, module: nn.Module) -> nn.Module:
        """Register a strategy's own trainable module (call it from the strategy's __init__:
        it is then in the optimizer's "head" group, the checkpoints and clone_model)."""
        if name in self.extras:
            raise ValueError(f"model extra {name!r} exists already")
        self.extras[name] = module
        return module

    def add_aux_heads(self, num_classes: int) -> nn.ModuleDict:
        """Create the auxiliary uni-modal heads u_m = A_m h_m + a_m (`model.heads: aux`)."""
        if self.aux_heads is None:
            dims = self.feature_dims()
            self.aux_heads = nn.ModuleDict({m: nn.Linear(dims[m], num_classes) for m in self.modalities})
        return self.aux_heads

    def encode(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.encoders[m](x[m]) for m in self.modalities}

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fusion(self.encode(x))

    def encoder_parameters(self, modality: str) -> list[nn.Parameter]:
        """Explicit per-modality parameter list (never name matching)."""
        return list(self.encoders[modality].parameters())

    def feature_dims(self) -> dict[str, int]:
        return {m: int(self.encoders[m].out_dim) for m in self.modalities}  # type: ignore[arg-type]


def official_init(module: nn.Module) -> None:
    """`weight_init` of both official codes (OGM-GE_CVPR2022 utils/utils.py, BML_TPAMI2024
    main.py), applied with `model.apply`: Linear -> Xavier-normal weight, zero bias; Conv2d ->
    Kaiming-normal (fan_out, relu); BatchNorm2d -> weight 1, bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def build_model(
    cfg: ModelConfig,
    input_shapes: dict[str, tuple[int, ...]],
    num_classes: int,
    aux_heads: bool = False,
    sequences: list[str] | tuple[str, ...] = (),
) -> MultimodalModel:
    """`sequences`: the modalities that come with lengths (their default encoder is the
    transformer)."""
    unknown = sorted(set(cfg.encoders) - set(input_shapes))
    if unknown:
        raise ConfigError(
            [
                (
                    "model.encoders",
                    f"names modalities {unknown} that the dataset does not have (it has {sorted(input_shapes)})",
                )
            ]
        )
    seq = set(sequences or ())
    encoders = {
        m: build_encoder(shape, cfg.encoders.get(m), cfg.feature_dim, modality=m, sequence=m in seq)
        for m, shape in input_shapes.items()
    }
    if cfg.head == "shared":
        # every feature projected to feature_dim (the projection belongs to the modality's
        # encoder: its parameter group, its freezing and re-initialisation)
        encoders = {
            m: e if int(e.out_dim) == cfg.feature_dim else Projected(e, cfg.feature_dim)  # type: ignore[arg-type]
            for m, e in encoders.items()
        }
    dims = {m: int(e.out_dim) for m, e in encoders.items()}  # type: ignore[arg-type]
    fusion = (
        SharedHead(dims, num_classes)
        if cfg.head == "shared"
        else build_fusion(cfg.fusion, dims, num_classes, cfg.fusion_params)
    )
    model = MultimodalModel(encoders, fusion)
    if aux_heads or cfg.heads == "aux":
        model.add_aux_heads(num_classes)
    if cfg.init == "official":  # after the aux heads: the official codes apply it to the whole model
        model.apply(official_init)
    return model
