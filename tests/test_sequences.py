"""Sequence modalities (issue 20 item 5; CONTRACT.md "Sequence modalities"): `x_<m>` [N, T, D]
with `len_<m>` [N] in the features format, the padding ignored by the `transformer` and
`gru` encoders (masked pooling), lengths outside 1..T refused naming the field, the built-in
`synthetic_seq` set, and training with OPM + OGM-GE on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bml_core.config import ConfigError, load_config, validate_config
from bml_core.data import build_dataset
from bml_core.data.features import save_features
from bml_core.errors import DatasetError
from bml_core.models.encoders import build_encoder
from bml_core.models.sequence import GRUEncoder, TransformerEncoder, masked_pool
from bml_core.schema import DatasetConfig, EncoderConfig
from bml_core.trainer import Trainer


def test_masked_pool_by_hand() -> None:
    h = torch.tensor([[[1.0], [3.0], [99.0]], [[5.0], [-7.0], [2.0]], [[4.0], [4.0], [4.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    assert masked_pool(h, mask, "mean").flatten().tolist() == [2.0, 0.0, 0.0]
    assert masked_pool(h, mask, "max").flatten().tolist() == [3.0, 5.0, 0.0]
    assert masked_pool(h, mask, "last").flatten().tolist() == [3.0, 2.0, 0.0]


@pytest.mark.parametrize("name", ["transformer", "gru"])
def test_padding_values_do_not_change_the_features(name: str) -> None:
    torch.manual_seed(0)
    enc = build_encoder((6, 5), EncoderConfig(name=name, hidden_dim=16, layers=2), 8, "text", sequence=True)
    enc.eval()
    lens = torch.tensor([2, 6, 1, 0])
    mask = (torch.arange(6)[None] < lens[:, None]).float()
    x = torch.cat([torch.randn(4, 6, 4), mask[..., None]], -1)
    noisy = x.clone()
    noisy[..., :4] += 50.0 * (1 - mask)[..., None]  # garbage on the padding only
    a, b = enc(x), enc(noisy)
    torch.testing.assert_close(a, b)
    assert torch.isfinite(a).all()
    # a valid position does change them
    moved = x.clone()
    moved[0, 1, 0] += 1.0
    assert not torch.allclose(enc(moved)[0], a[0])
    # the empty sample (an input zeroed for an absent modality) pools to zero
    torch.testing.assert_close(enc(torch.zeros(1, 6, 5)), enc.out(torch.zeros(1, enc.out.in_features)))


def _sequence_file(path: Path, lengths: np.ndarray, t: int = 7) -> Path:
    rng = np.random.default_rng(0)
    n = len(lengths)
    y = np.arange(n) % 3
    x_text = rng.standard_normal((n, t, 4)).astype(np.float32)
    x_text[:, :, 0] += y[:, None]
    x_vec = rng.standard_normal((n, 5)).astype(np.float32)
    return save_features(path, {"text": x_text, "vec": x_vec}, y, lengths={"text": lengths})


def test_features_with_lengths_load_as_masked_sequences(tmp_path: Path) -> None:
    lengths = np.array([1, 7, 3, 4, 5, 6, 2, 7, 3] * 10)
    path = _sequence_file(tmp_path / "seq.npz", lengths)
    bundle = build_dataset(DatasetConfig(name="features", path=str(path)))
    assert bundle.info["sequences"] == ["text"]
    assert bundle.input_shapes == {"text": (7, 5), "vec": (5,)}
    x = torch.cat([bundle.train.x["text"], bundle.val.x["text"], bundle.test.x["text"]])
    valid = x[..., -1].sum(1)
    assert sorted(valid.long().tolist()) == sorted(lengths.tolist())
    pad = x[..., -1] == 0
    assert (x[pad][:, :-1] == 0).all()
    cfg = load_config(
        {
            "dataset": {"name": "features", "path": str(path)},
            "strategies": ["opm", "ogm_ge"],
            "model": {"encoders": {"text": {"hidden_dim": 16, "layers": 1, "name": "transformer"}}},
            "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
        }
    )
    trainer = Trainer(cfg)
    assert isinstance(trainer.model.encoders["text"], TransformerEncoder)
    assert trainer.model.encoders["text"].masked
    summary = trainer.fit()
    assert set(summary["test"]["acc_per_modality"]) == {"text", "vec"}


def test_the_transformer_is_the_default_for_sequences_with_lengths(tmp_path: Path) -> None:
    path = _sequence_file(tmp_path / "seq.npz", np.array([3, 7, 5] * 10))
    cfg = load_config(
        {"dataset": {"name": "features", "path": str(path)}, "train": {"epochs": 1, "device": "cpu"}}
    )
    trainer = Trainer(cfg)
    assert isinstance(trainer.model.encoders["text"], TransformerEncoder)
    assert type(trainer.model.encoders["vec"]).__name__ == "MLPEncoder"


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([3, 8, 2] * 10, "len_text[1] = 8 lies outside 1..T = 1..7"),
        ([3, 0, 2] * 10, "len_text[1] = 0 lies outside 1..T = 1..7"),
        ([3, 2] * 5, "len_text must have shape [30] (one length per sample), got [10]"),
        ([1.5, 2.0, 3.0] * 10, "len_text must hold whole numbers"),
    ],
)
def test_bad_lengths_name_the_field(tmp_path: Path, lengths: list[float], message: str) -> None:
    rng = np.random.default_rng(0)
    path = save_features(
        tmp_path / "bad.npz",
        {"text": rng.standard_normal((30, 7, 4)), "vec": rng.standard_normal((30, 3))},
        np.arange(30) % 3,
        lengths={"text": np.array(lengths)},
    )
    with pytest.raises(DatasetError) as exc:
        build_dataset(DatasetConfig(name="features", path=str(path)))
    assert exc.value.field == "len_text"
    assert message in str(exc.value)


def test_lengths_need_a_sequence_array(tmp_path: Path) -> None:
    path = save_features(
        tmp_path / "bad.npz",
        {"a": np.zeros((6, 4)), "b": np.zeros((6, 3))},
        np.arange(6) % 2,
        lengths={"a": np.ones(6)},
    )
    with pytest.raises(DatasetError) as exc:
        build_dataset(DatasetConfig(name="features", path=str(path)))
    assert exc.value.field == "len_a" and "[N, T, D]" in str(exc.value)


def test_synthetic_seq_has_variable_lengths_and_three_modalities() -> None:
    cfg = DatasetConfig(name="synthetic_seq", params={"num_samples": 200})
    bundle = build_dataset(cfg)
    assert bundle.modalities == ["text", "audio", "visual"]
    assert bundle.input_shapes == {"text": (24, 33), "audio": (32, 17), "visual": (16, 25)}
    lengths = bundle.train.x["audio"][..., -1].sum(1)
    assert lengths.min() >= 8 and lengths.max() <= 32 and len(set(lengths.tolist())) > 5
    with pytest.raises(ConfigError) as exc:
        validate_config(
            {
                "dataset": {
                    "name": "synthetic_seq",
                    "params": {"modalities": [{"name": "a", "min_len": 9, "max_len": 3}, {"name": "b"}]},
                }
            }
        )
    assert "min_len (9) must be <= max_len (3)" in exc.value.as_dict()["dataset.params.modalities.0"]


def test_synthetic_seq_trains_with_gru_and_opm_ogm_ge() -> None:
    cfg = load_config(
        {
            "dataset": {"name": "synthetic_seq", "params": {"num_samples": 300}},
            "model": {
                "feature_dim": 16,
                "encoders": {
                    m: {"name": "gru", "hidden_dim": 8, "layers": 1} for m in ("text", "audio", "visual")
                },
            },
            "strategies": ["opm", "ogm_ge"],
            "train": {"epochs": 1, "batch_size": 32, "device": "cpu"},
        }
    )
    trainer = Trainer(cfg)
    assert all(isinstance(e, GRUEncoder) and e.masked for e in trainer.model.encoders.values())
    summary = trainer.fit()
    assert set(summary["test"]["acc_per_modality"]) == {"text", "audio", "visual"}
