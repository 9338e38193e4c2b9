"""The `two_rings` dataset's spec (torch-free): a seeded two-modality set, the class encoded
by a ring's radius in `ring` and by a noisy prototype in `blob`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bml_core.dataspecs import DatasetSpec


class TwoRingsParams(BaseModel):
    """`dataset.params` of two_rings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    num_samples: int = Field(600, ge=30, le=1_000_000, description="samples in all splits")
    num_classes: int = Field(3, ge=2, le=50, description="classes (rings)")
    blob_dim: int = Field(16, ge=2, le=4096, description="width of the blob modality")
    blob_strength: float = Field(0.5, ge=0.0, le=100.0, description="prototype scale of the blob modality")
    data_seed: int = Field(0, ge=0, le=2**32 - 1, description="fixes the data")


SPEC = DatasetSpec(
    name="two_rings",
    description="Seeded rings (radius = class) + noisy blobs, two modalities (example plug-in).",
    params=TwoRingsParams,
    impl=".impl:build_two_rings",
    modalities=lambda _p: ["ring", "blob"],
    recommended={"train": {"epochs": 5, "batch_size": 32}, "optim": {"name": "adam", "lr": 0.01}},
)
