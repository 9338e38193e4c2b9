"""The authors' InfoReg epoch, re-implemented from
GeWu-Lab/InfoReg_CVPR2025@939b2ed11dcbf4daddb2507157b2cb9f8d0e24d7 main.py (torch only, no
bml_core imports).

- L236-243: k = 1 at epoch 0, else tr1 = sum(audio_trace_list[-10:]) / 10,
  tr2 = sum(audio_trace_list[-11:-1]) / 10, k = (tr1 - tr2) / tr1; L694 starts the list with
  ten zeros (the same as padding it with zeros).
- L256: global_model = deepcopy(model) at the epoch's start (the anchor).
- L303-308: fim_audio over the Conv2d/Linear weights of `audio_net`.
- L358-362: out_v = v W[:, d_a:]^T + b / 2, out_a = a W[:, :d_a]^T + b / 2 (W, b of the
  concat head); L378-380 the three mean cross-entropies.
- L407-455: a diagnostic loop (backward of each loss, gradients copied for logging, then
  optimizer.zero_grad()) that leaves no gradient behind; left out here.
- L458-460: loss_out_v, loss_out_a and loss backward (the gradients add up).
- L462-463: score = sum over the batch of softmax(out)[i][y_i].
- L467-487: audio ahead and k > 0.05: beta = 0.95 exp(tanh(s_a - s_v)), beta2 = 0; visual
  ahead and k > 0.05: beta2 = 0.1 exp(tanh(s_v - s_a)), beta = 0; otherwise both 0.
- L491-498: grad += beta (theta - anchor) for audio_net's parameters, beta2 for visual_net's.
- L511-518: fim_audio += grad^2 (after the proximal term).
- L547: optimizer.step(); L581-585, L595: the epoch's trace = sum over the tensors of the mean
  of fim_audio, appended to audio_trace_list.
- L714: SGD(model.parameters(), lr, momentum=0.9, weight_decay=1e-4).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def window_k(epoch: int, audio_trace_list: Sequence[float]) -> float:
    if epoch == 0:
        return 1.0
    trace = [0.0] * 10 + list(audio_trace_list)  # L694
    tr1 = sum(trace[-10:]) / 10
    tr2 = sum(trace[-11:-1]) / 10
    return (tr1 - tr2) / tr1


def official_epoch(
    model: nn.Module,
    audio_net: nn.Module,
    visual_net: nn.Module,
    head: nn.Linear,
    encode: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
    batches: Sequence[tuple[Any, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    epoch: int,
    audio_trace_list: list[float],
) -> list[dict[str, Any]]:
    """One train_epoch of main.py. `encode(x)` gives (a, v), the two encoders' features; the
    head is the concat Linear. Returns per step: k, beta, beta2, the three losses and the
    gradients just before optimizer.step(); appends the epoch's audio trace."""
    k = window_k(epoch, audio_trace_list)
    global_model = copy.deepcopy(model)
    anchor = dict(zip([id(p) for p in model.parameters()], global_model.parameters(), strict=True))
    audio_ids = {id(p) for p in audio_net.parameters()}
    visual_ids = {id(p) for p in visual_net.parameters()}
    fim_audio = {
        name: torch.zeros_like(m.weight)
        for name, m in audio_net.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad
    }
    model.train()
    d_a = None
    log: list[dict[str, Any]] = []
    for x, label in batches:
        optimizer.zero_grad()
        a, v = encode(x)
        d_a = a.shape[1]
        out = head(torch.cat([a, v], dim=1))
        out_v = torch.mm(v, head.weight[:, d_a:].t()) + head.bias / 2
        out_a = torch.mm(a, head.weight[:, :d_a].t()) + head.bias / 2
        loss = F.cross_entropy(out, label)
        loss_out_v = F.cross_entropy(out_v, label)
        loss_out_a = F.cross_entropy(out_a, label)
        loss_out_v.backward(retain_graph=True)
        loss_out_a.backward(retain_graph=True)
        loss.backward()
        with torch.no_grad():
            idx = torch.arange(len(label))
            score_v = float(out_v.softmax(1)[idx, label].sum())
            score_a = float(out_a.softmax(1)[idx, label].sum())
        beta, beta2 = 0.0, 0.0
        if score_a > score_v and k > 0.05:
            beta = 0.95 * float(torch.exp(torch.tanh(torch.tensor(score_a - score_v))))
        elif score_a < score_v and k > 0.05:
            beta2 = 0.1 * float(torch.exp(torch.tanh(torch.tensor(score_v - score_a))))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad and id(p) in audio_ids:
                    p.grad += beta * (p - anchor[id(p)])
                if p.requires_grad and id(p) in visual_ids:
                    p.grad += beta2 * (p - anchor[id(p)])
            for name, m in audio_net.named_modules():
                if name in fim_audio:
                    fim_audio[name] += m.weight.grad * m.weight.grad
        grads = {id(p): p.grad.clone() for p in model.parameters() if p.grad is not None}
        optimizer.step()
        log.append(
            {
                "k": k,
                "beta": beta,
                "beta2": beta2,
                "loss": float(loss.detach()),
                "loss_a": float(loss_out_a.detach()),
                "loss_v": float(loss_out_v.detach()),
                "grads": grads,
            }
        )
    audio_trace_list.append(sum(float(f.mean()) for f in fim_audio.values()))
    return log
