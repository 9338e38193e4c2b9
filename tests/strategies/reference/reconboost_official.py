"""The authors' ReconBoost phase-1 (boosting) loss, re-implemented from
huacong/ReconBoost@14ab57ac26e0ad7badb29c4e08ec4ca9d4bb0932 train.py L336-340 (torch only):

    target = one_hot(lbl)
    boosting_loss = - w1 * (target * out_obj.log_softmax(1)).mean(-1)
                    + w2 * (target * out_join.detach().softmax(1) * out_obj.log_softmax(1)).mean(-1)

i.e. per sample (w1 - w2 q_join(y)) CE(out_obj, y) / C, then the batch mean (the `.mean()`
before backward). `out_join` is the ensemble of the other learners (boost rate times their
sum).
"""

from __future__ import annotations

import torch


def boosting_loss(
    out_obj: torch.Tensor, out_join: torch.Tensor, y: torch.Tensor, w1: float, w2: float
) -> torch.Tensor:
    target = torch.zeros_like(out_obj).scatter_(1, y.view(-1, 1), 1)
    per = -w1 * (target * out_obj.log_softmax(1)).mean(-1) + w2 * (
        target * out_join.detach().softmax(1) * out_obj.log_softmax(1)
    ).mean(-1)
    return per.mean()


class Head(torch.nn.Module):
    """The authors' shared head, huacong/ReconBoost@14ab57a models/dynamic_net.py L5-15
    (`common_space`, every data set but MSA): fc1 Linear(input_dim=512, 256), ReLU,
    fc2 Linear(256, output_dim)."""

    def __init__(self, input_dim: int = 512, output_dim: int = 40) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(input_dim, 256)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(256, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))
