"""Sequence modalities in memory (CONTRACT.md "Sequence modalities"): an `x_<m>` array
[N, T, D] with its lengths `len_<m>` [N] (1 <= len <= T) becomes [N, T, D + 1] with the
padding (positions >= len) zeroed and a last channel that is 1 on the valid positions, which
the sequence encoders (bml_core.models.sequence) read as their mask."""

from __future__ import annotations

import numpy as np

from bml_core.errors import DatasetError


def check_lengths(x: np.ndarray, lengths: np.ndarray, modality: str, source: str = "") -> np.ndarray:
    """The lengths as int64 after checking them against x_<m>; a DatasetError naming `len_<m>`."""
    where = f"{source}: " if source else ""
    field = f"len_{modality}"
    if x.ndim != 3:
        raise DatasetError(
            f"{where}{field} is given but x_{modality} has shape {list(x.shape)}; lengths need a "
            f"sequence array [N, T, D]",
            field=field,
            path=source or None,
        )
    lengths = np.asarray(lengths)
    if lengths.shape != (x.shape[0],):
        raise DatasetError(
            f"{where}{field} must have shape [{x.shape[0]}] (one length per sample), got {list(lengths.shape)}",
            field=field,
            path=source or None,
        )
    if lengths.dtype.kind == "f":
        if not np.all(np.isfinite(lengths)) or not np.all(lengths == np.round(lengths)):
            raise DatasetError(f"{where}{field} must hold whole numbers", field=field, path=source or None)
    elif lengths.dtype.kind not in ("i", "u"):
        raise DatasetError(
            f"{where}{field} must be integers, got dtype {lengths.dtype}", field=field, path=source or None
        )
    lengths = lengths.astype(np.int64)
    t = x.shape[1]
    bad = np.flatnonzero((lengths < 1) | (lengths > t))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(
            f"{where}{field}[{i}] = {int(lengths[i])} lies outside 1..T = 1..{t} (x_{modality} has T = {t} "
            f"positions; {bad.size} sample(s) affected): a length counts the valid positions of its row",
            field=field,
            path=source or None,
        )
    return lengths


def with_mask(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[N, T, D] + lengths -> [N, T, D + 1] float32: padding zeroed, last channel the mask."""
    t = x.shape[1]
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    values = np.asarray(x, dtype=np.float32) * mask[..., None]
    return np.concatenate([values, mask[..., None]], axis=-1)
