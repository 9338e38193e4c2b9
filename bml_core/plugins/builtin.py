"""The built-in encoders and fusion heads, declared as plug-in specs like any other (their
implementations in bml_core.models import torch and load only when a model is built)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bml_core.plugins.specs import EncoderSpec, FusionSpec


class SequenceParams(BaseModel):
    """Parameters of the sequence encoders (besides hidden_dim, layers and dropout)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    heads: int = Field(4, ge=1, le=64, description="attention heads (transformer; hidden_dim must divide)")
    pooling: str = Field("mean", pattern="^(mean|last|max)$", description="masked pooling: mean | last | max")
    max_len: int = Field(4096, ge=1, le=1 << 16, description="longest sequence (positional table size)")


class HiddenParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    hidden_dim: int = Field(512, ge=1, le=1 << 16, description="width of the conditioning / gate layer")


ENCODERS = (
    EncoderSpec(
        name="mlp",
        description="MLP on the flattened input (hidden_dim x layers); the default for vectors.",
        impl="bml_core.models.encoders:build_mlp",
        ranks=(1, 2, 3, 4),
    ),
    EncoderSpec(
        name="cnn",
        description="Small CNN for [F,T] spectrograms and [C,H,W] images (frames averaged for [T,C,H,W]).",
        impl="bml_core.models.encoders:build_cnn",
        ranks=(2, 3, 4),
    ),
    EncoderSpec(
        name="resnet18",
        description="ResNet-18 as in the OGM-GE / T-PAMI code (512-wide features).",
        impl="bml_core.models.encoders:build_resnet18",
        ranks=(2, 3, 4),
    ),
    EncoderSpec(
        name="transformer",
        description="Transformer encoder over [T, D] sequences with masked pooling (padding ignored).",
        impl="bml_core.models.sequence:build_transformer",
        params=SequenceParams,
        ranks=(2,),
        sequence=True,
    ),
    EncoderSpec(
        name="gru",
        description="Bidirectional GRU over [T, D] sequences with masked pooling (padding ignored).",
        impl="bml_core.models.sequence:build_gru",
        params=SequenceParams,
        ranks=(2,),
        sequence=True,
    ),
)

FUSIONS = (
    FusionSpec(
        name="concat",
        description="One Linear over the concatenated features (the papers' head; per-modality blocks).",
        impl="bml_core.models.fusion:ConcatFusion",
    ),
    FusionSpec(
        name="sum",
        description="One Linear per modality, logits summed.",
        impl="bml_core.models.fusion:SumFusion",
    ),
    FusionSpec(
        name="film",
        description="FiLM: the first modality modulates the second (no per-modality blocks).",
        impl="bml_core.models.fusion:FiLMFusion",
        params=HiddenParams,
        per_modality_blocks=False,
    ),
    FusionSpec(
        name="gated",
        description="Gated fusion: one modality gates the other (no per-modality blocks).",
        impl="bml_core.models.fusion:GatedFusion",
        params=HiddenParams,
        per_modality_blocks=False,
    ),
    FusionSpec(
        name="shared",
        description="One Linear head shared by every modality (u_m = head(h_m)); chosen by model.head: shared.",
        impl="bml_core.models.fusion:SharedHead",
        selected_by="model.head: shared",
    ),
)
