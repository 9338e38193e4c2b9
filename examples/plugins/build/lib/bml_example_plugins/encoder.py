"""The `residual_mlp` encoder's spec (torch-free): vectors -> feature_dim through residual
blocks of width `width`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bml_core.plugins import EncoderSpec


class ResidualMLPParams(BaseModel):
    """`model.encoders.<m>.params` of residual_mlp (the Launch form's fields come from here)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    width: int = Field(64, ge=4, le=4096, description="width of every residual block")
    blocks: int = Field(2, ge=1, le=16, description="number of residual blocks")


SPEC = EncoderSpec(
    name="residual_mlp",
    description="Residual MLP for vectors (example plug-in): input -> width, `blocks` x (x + MLP(x)), -> feature_dim.",
    impl=".impl:build_residual_mlp",  # relative to this module's package
    params=ResidualMLPParams,
    ranks=(1,),
)
