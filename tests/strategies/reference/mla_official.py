"""The authors' MLA gradient projection, re-implemented from
Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation@ab6c184579f9ff390e9c9b8216c9900c2a43545b
utils/utils.py L24-41 (GSPlugin.before_update) and main.py L432-442 (per modality: loss.backward,
before_update, optimizer.step, exp_count += 1). Torch only.

    lamda = batch_index / len_dataloader + 1; alpha = 0.1 ** lamda          (L26-27)
    if train_exp_counter != 0:                                              (L29)
        r = mean(input, 0, keepdim); k = Pl r^T                             (L34-35)
        Pl = Pl - k k^T / (alpha + k r)                                      (L36)
        Pl = Pl / ||Pl||_F; w.grad = w.grad Pl^T                             (L38-41)

Two notes, both in docs/FIDELITY.md: L36's `torch.mm(k, r)` is a [d, d] outer product
(k is [d, 1], r is [1, d]), so the literal code divides element by element; the OWM
projection it copies (and the paper) divide by the scalar r P r^T, which is what this
reference and ours do. And L32's `n == "module.weight"` never matches the `fc_out` Linear
that main.py passes (its parameters are named "weight", "bias"), so the released run never
projects: `mla.projection: false` reproduces that.
"""

from __future__ import annotations

import torch


class GSPluginReference:
    def __init__(self, p0: torch.Tensor) -> None:
        self.Pl = p0.clone()
        self.exp_count = 0

    def before_update(
        self, weight: torch.nn.Parameter, inputs: torch.Tensor, batch_index: int, n_batches: int
    ) -> None:
        lamda = batch_index / n_batches + 1
        alpha = 1.0 * 0.1**lamda
        if self.exp_count != 0:
            r = torch.mean(inputs, 0, True)
            k = torch.mm(self.Pl, torch.t(r))
            self.Pl = torch.sub(self.Pl, torch.mm(k, torch.t(k)) / (alpha + torch.mm(r, k)))
            self.Pl = self.Pl / torch.norm(self.Pl, p="fro")
            weight.grad = torch.mm(weight.grad, torch.t(self.Pl))
        self.exp_count += 1
