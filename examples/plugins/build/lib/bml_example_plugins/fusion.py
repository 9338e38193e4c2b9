"""The `weighted_sum` fusion head's spec (torch-free): a Linear head per modality, their
logits summed with learned softmax weights."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bml_core.plugins import FusionSpec


class WeightedSumParams(BaseModel):
    """`model.fusion_params` of weighted_sum."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    temperature: float = Field(
        1.0, gt=0.0, le=100.0, description="softmax temperature of the modality weights"
    )


SPEC = FusionSpec(
    name="weighted_sum",
    description="Per-modality Linear heads summed with learned softmax weights (example plug-in).",
    impl=".impl:WeightedSumFusion",
    params=WeightedSumParams,
    per_modality_blocks=True,
)
