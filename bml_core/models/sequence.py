"""Sequence encoders (CONTRACT.md "Sequence modalities"): `transformer` and `gru` over [T, D]
inputs with masked pooling. A modality read with lengths (`len_<m>`) arrives as [T, D + 1]:
the last channel is the validity mask (1 up to the sample's length, 0 on the padding, whose
values are zeroed); with `masked=True` the encoder splits it off and ignores every padded
position (attention key padding, packed GRU, pooling). A sample with no valid position (an
input zeroed for an absent modality) pools to the zero vector."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bml_core.plugins.builtin import SequenceParams
from bml_core.schema import ConfigError, EncoderConfig


def split_mask(x: torch.Tensor, masked: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(values [N, T, D], mask [N, T] bool) of a batch."""
    if not masked:
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return x[..., :-1], x[..., -1] > 0.5


def masked_pool(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool [N, T, H] over the valid positions only (mean, max, or the last valid one)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    count = mask.sum(1)
    if how == "mean":
        return (h * m).sum(1) / count.clamp(min=1).unsqueeze(-1).to(h.dtype)
    if how == "max":
        filled = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        return torch.where(count.unsqueeze(-1) > 0, filled, torch.zeros_like(filled))
    last = (count - 1).clamp(min=0)
    picked = h[torch.arange(h.shape[0], device=h.device), last]
    return picked * (count > 0).unsqueeze(-1).to(h.dtype)


class TransformerEncoder(nn.Module):
    def __init__(
        self,
        in_dim: int,
        width: int,
        layers: int,
        heads: int,
        out_dim: int,
        dropout: float,
        pooling: str,
        max_len: int,
        masked: bool,
    ):
        super().__init__()
        if width % heads:
            raise ConfigError(
                [("model.encoders.<m>.params.heads", f"hidden_dim {width} is not divisible by heads {heads}")]
            )
        self.masked, self.pooling, self.out_dim = masked, pooling, out_dim
        self.inp = nn.Linear(in_dim, width)
        self.pos = nn.Parameter(torch.zeros(max_len, width))
        nn.init.normal_(self.pos, std=1.0 / math.sqrt(width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, mask = split_mask(x, self.masked)
        t = values.shape[1]
        h = self.inp(values) + self.pos[:t]
        # a sample without any valid position attends to position 0 (pooled to zero below)
        attend = mask.clone()
        attend[:, 0] |= ~mask.any(1)
        h = self.body(h, src_key_padding_mask=~attend)
        return self.out(masked_pool(h, mask, self.pooling))


class GRUEncoder(nn.Module):
    def __init__(
        self, in_dim: int, width: int, layers: int, out_dim: int, dropout: float, pooling: str, masked: bool
    ):
        super().__init__()
        self.masked, self.pooling, self.out_dim = masked, pooling, out_dim
        self.gru = nn.GRU(
            in_dim,
            width,
            layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out = nn.Linear(2 * width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, mask = split_mask(x, self.masked)
        lengths = mask.sum(1)
        packed = pack_padded_sequence(
            values, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=values.shape[1])
        return self.out(masked_pool(h, mask, self.pooling))


def _dims(shape: tuple[int, ...], masked: bool) -> int:
    return int(shape[-1]) - (1 if masked else 0)


def build_transformer(
    shape: tuple[int, ...], cfg: EncoderConfig, feature_dim: int, masked: bool = False
) -> nn.Module:
    p = SequenceParams.model_validate(cfg.params)
    if shape[0] > p.max_len:
        raise ConfigError(
            [("model.encoders.<m>.params.max_len", f"sequences have T = {shape[0]} > max_len {p.max_len}")]
        )
    return TransformerEncoder(
        _dims(shape, masked),
        cfg.hidden_dim,
        cfg.layers,
        p.heads,
        feature_dim,
        cfg.dropout,
        p.pooling,
        p.max_len,
        masked,
    )


def build_gru(
    shape: tuple[int, ...], cfg: EncoderConfig, feature_dim: int, masked: bool = False
) -> nn.Module:
    p = SequenceParams.model_validate(cfg.params)
    return GRUEncoder(
        _dims(shape, masked), cfg.hidden_dim, cfg.layers, feature_dim, cfg.dropout, p.pooling, masked
    )
