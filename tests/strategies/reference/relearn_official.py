"""The authors' diagnosis and soft re-initialisation, re-implemented from
GeWu-Lab/Diagnosing_Relearning_ECCV2024@025085ea82ed784c6ab6e5fb1b08bfe498dd0fc7 code/ours.py
(numpy / scikit-learn / torch only, no bml_core imports).

- L63-96 purity_score: labels mapped to 0..L-1, each cluster votes its most frequent label,
  accuracy of the voted labels.
- L99-127 reinit_score: per feature set MinMaxScaler(feature_range=(-1, 1)), KMeans(n_clusters=
  n_classes, random_state=0) (n_init left at the scikit-learn default: 10 before 1.4, 'auto'
  = 1 since; given explicitly here), purity gap |train - val| per modality,
  weight = tanh(move_lambda * gap).
- L139-169 reinit: for every *parameter* of audio_net / visual_net,
  param.data = w * init + (1 - w) * current (buffers untouched; the optimizer and its
  momentum buffers are not reset).
- L418-427: after epoch e with e % reinit_epoch == 0 and e > 0, at most reinit_num times.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import MinMaxScaler
from torch import nn


def purity_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = y_true.copy()
    y_voted = np.zeros(y_true.shape)
    labels = np.unique(y_true)
    for k in range(labels.shape[0]):
        y_true[y_true == labels[k]] = np.arange(labels.shape[0])[k]
    labels = np.unique(y_true)
    bins = np.concatenate((labels, [np.max(labels) + 1]), axis=0)
    for cluster in np.unique(y_pred):
        hist, _ = np.histogram(y_true[y_pred == cluster], bins=bins)
        y_voted[y_pred == cluster] = np.argmax(hist)
    return float(accuracy_score(y_true, y_voted))


def reinit_score(
    train: list[np.ndarray],
    y_train: np.ndarray,
    val: list[np.ndarray],
    y_val: np.ndarray,
    n_classes: int,
    move_lambda: float,
    n_init: int = 10,
) -> tuple[list[float], list[float]]:
    """(weights, gaps) per modality from the train and val features of each encoder."""
    weights, gaps = [], []
    for tr, va in zip(train, val, strict=True):
        purities = []
        for fea, y in ((tr, y_train), (va, y_val)):
            result = MinMaxScaler(feature_range=(-1, 1)).fit_transform(fea)
            pred = KMeans(n_clusters=n_classes, random_state=0, n_init=n_init).fit_predict(result)
            purities.append(purity_score(np.array(y), pred))
        gap = float(np.abs(purities[0] - purities[1]))
        gaps.append(gap)
        weights.append(float(torch.tanh(torch.tensor(move_lambda * gap))))
    return weights, gaps


@torch.no_grad()
def reinit(encoder: nn.Module, init: dict[str, torch.Tensor], weight: float) -> None:
    for name, param in encoder.named_parameters():
        param.data = weight * init[name] + (1 - weight) * param.data
