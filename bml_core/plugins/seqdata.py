"""The built-in sequence set `synthetic_seq` (CONTRACT.md "Sequence modalities"): its
torch-free spec and parameters (text, audio and visual sequences [T, D] of variable length,
each with its own signal strength); the builder is bml_core.data.synthetic_seq."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bml_core.dataspecs import DatasetSpec

MAX_VALUES = 1 << 27  # samples x T x D over the modalities (512 MiB of float32)


class SeqModality(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(max_length=100)
    dim: int = Field(16, ge=1, le=4096, description="features per position (D)")
    min_len: int = Field(4, ge=1, le=4096, description="shortest sequence")
    max_len: int = Field(24, ge=1, le=4096, description="longest sequence (T: shorter ones are padded)")
    strength: float = Field(
        1.0, ge=0.0, le=1e4, description="class signal per valid position (signal-to-noise)"
    )

    @model_validator(mode="after")
    def _lengths(self) -> SeqModality:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must be <= max_len ({self.max_len})")
        return self


def _default_modalities() -> list[SeqModality]:
    return [
        SeqModality(name="text", dim=32, min_len=4, max_len=24, strength=0.08),
        SeqModality(name="audio", dim=16, min_len=8, max_len=32, strength=0.05),
        SeqModality(name="visual", dim=24, min_len=4, max_len=16, strength=0.04),
    ]


class SyntheticSeqParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    num_samples: int = Field(2000, ge=10, le=1_000_000)
    num_classes: int = Field(4, ge=2, le=1000)
    data_seed: int = Field(
        0, ge=0, le=2**32 - 1, description="fixes the data; the run seed varies only training"
    )
    modalities: list[SeqModality] = Field(default_factory=_default_modalities, min_length=2, max_length=8)

    @model_validator(mode="after")
    def _size(self) -> SyntheticSeqParams:
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise ValueError("modality names must be distinct")
        total = self.num_samples * sum(m.max_len * (m.dim + 1) for m in self.modalities)
        if total > MAX_VALUES:
            raise ValueError(
                f"num_samples x T x D ({total:,} values) exceeds {MAX_VALUES:,}; use fewer samples"
            )
        return self


SPEC = DatasetSpec(
    name="synthetic_seq",
    description="Seeded text / audio / visual sequences of variable length (strong, middle, weak modality).",
    params=SyntheticSeqParams,
    impl="bml_core.data.synthetic_seq:build_synthetic_seq",
    modalities=lambda p: [m.name for m in p.modalities],
    recommended={
        "model": {
            "feature_dim": 64,
            "encoders": {
                m: {"name": "transformer", "hidden_dim": 64, "layers": 1} for m in ("text", "audio", "visual")
            },
        },
        "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": {"name": "none"}},
        "train": {"epochs": 15, "batch_size": 64},
    },
)
