"""`synthetic_seq`: seeded sequence modalities of variable length (spec and parameters in
bml_core.plugins.seqdata). Per modality m and sample i: a length L_i ~ U{min_len..max_len},
positions t < L_i hold N(0, 1) noise + strength_m * p_m[y_i] (a unit-variance class
prototype), positions >= L_i are padding (zero, masked: bml_core.data.sequences)."""

from __future__ import annotations

import numpy as np
import torch

from bml_core.data.base import DatasetBundle, split_tensor_dataset
from bml_core.data.sequences import with_mask
from bml_core.errors import DatasetError
from bml_core.plugins.seqdata import SyntheticSeqParams
from bml_core.schema import DatasetConfig


def make_synthetic_seq(
    p: SyntheticSeqParams,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """(values [N, T, D] per modality, lengths [N] per modality, labels [N])."""
    rng = np.random.default_rng(p.data_seed)
    y = rng.integers(0, p.num_classes, p.num_samples)
    xs: dict[str, np.ndarray] = {}
    lens: dict[str, np.ndarray] = {}
    for m in p.modalities:
        protos = rng.standard_normal((p.num_classes, m.dim))
        length = rng.integers(m.min_len, m.max_len + 1, p.num_samples)
        x = rng.standard_normal((p.num_samples, m.max_len, m.dim)) + m.strength * protos[y][:, None, :]
        xs[m.name], lens[m.name] = x.astype(np.float32), length.astype(np.int64)
    return xs, lens, y.astype(np.int64)


def build_synthetic_seq(cfg: DatasetConfig) -> DatasetBundle:
    try:
        p = SyntheticSeqParams.model_validate(cfg.params)
    except ValueError as exc:
        raise DatasetError(str(exc), field="dataset.params") from None
    xs, lens, y = make_synthetic_seq(p)
    x = {m: torch.from_numpy(with_mask(a, lens[m])) for m, a in xs.items()}
    train, val, test = split_tensor_dataset(x, torch.from_numpy(y), None, cfg, p.data_seed, "synthetic_seq")
    return DatasetBundle(
        name="synthetic_seq",
        train=train,
        val=val,
        test=test,
        input_shapes={m.name: (m.max_len, m.dim + 1) for m in p.modalities},
        num_classes=p.num_classes,
        class_names=[f"class{i}" for i in range(p.num_classes)],
        info={
            "sequences": [m.name for m in p.modalities],
            "strengths": {m.name: m.strength for m in p.modalities},
        },
    )
