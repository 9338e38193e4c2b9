"""The per-step numbers of an own-loop run, computed by the code a native run uses: the probe
(`bml_core.imbalance.UnimodalProbe`: s_m, uni-modal loss and accuracy), the discrepancy ratio
(`discrepancy_ratio_host`, on the scores once they are on the host), the fused batch accuracy (`Trainer._batch_acc`) and, for features, the
concat head's decomposition (`ConcatFusion.unimodal_logits`, u_m = W_m h_m + b / M). Keys are
CONTRACT.md's: train/loss, train/acc, train/loss/<m>, train/acc/<m>, imbalance/score/<m>,
imbalance/ratio/<m>. Everything goes to the host in one transfer; bad input is refused with the
name of the argument at fault before anything of the step is recorded."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bml_core.imbalance import UnimodalProbe, discrepancy_ratio_host
from bml_core.models.fusion import ConcatFusion
from bml_core.trainer import Trainer


class TrackingInputError(ValueError):
    """An own-loop call got input it cannot use; the message names the argument and the fix."""


def _check_keys(arg: str, given: Mapping[str, Any], modalities: Sequence[str]) -> None:
    if not isinstance(given, Mapping):
        raise TrackingInputError(f"{arg} must be a dict {{modality: tensor}}, got {type(given).__name__}")
    if set(given) != set(modalities):
        missing = [m for m in modalities if m not in given]
        extra = [k for k in given if k not in modalities]
        raise TrackingInputError(
            f"{arg} keys {list(given)} differ from the run's modalities {list(modalities)}"
            + (f" (missing: {missing})" if missing else "")
            + (f" (not declared: {extra})" if extra else "")
            + ": pass one tensor per modality given to bml_core.init(modalities=...)"
        )


def _check_tensor(arg: str, t: Any, rank: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TrackingInputError(f"{arg} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != rank:
        raise TrackingInputError(f"{arg} must have {rank} dimensions, got shape {list(t.shape)}")
    return t


class StepScorer:
    """Computes one step's metrics for the run's modalities and class count."""

    def __init__(self, modalities: Sequence[str], num_classes: int, ratio: str = "pairwise_mean"):
        self.modalities = list(modalities)
        self.num_classes = int(num_classes)
        self.ratio = ratio
        mods = self.modalities
        self.names = ["train/loss", "train/acc"] + [
            f"{family}/{m}"
            for family in ("train/loss", "train/acc", "imbalance/score", "imbalance/ratio")
            for m in mods
        ]
        self._heads: dict[int, ConcatFusion] = {}

    def check_head(self, head: nn.Module, features: Mapping[str, torch.Tensor]) -> None:
        """Refuse a head that is not the nn.Linear over the features concatenated in modality
        order (or features of the wrong rank / width), naming the argument."""
        if not isinstance(head, nn.Linear):
            raise TrackingInputError(
                f"head must be the nn.Linear over the features concatenated in modality order "
                f"{self.modalities}, got {type(head).__name__}; pass unimodal_logits={{m: ...}} instead"
            )
        dims = {m: int(_check_tensor(f"features[{m!r}]", features[m], 2).shape[1]) for m in self.modalities}
        if sum(dims.values()) != head.in_features or head.out_features != self.num_classes:
            raise TrackingInputError(
                f"head is Linear({head.in_features}, {head.out_features}) but the features give "
                f"{sum(dims.values())} inputs ({dims}) and the run has num_classes={self.num_classes}"
            )

    def decompose(self, head: nn.Module, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """u_m from features through an nn.Linear over the concatenation in modality order."""
        self.check_head(head, features)
        dims = {m: int(features[m].shape[1]) for m in self.modalities}
        fusion = self._heads.get(id(head))
        if fusion is None or fusion.fc is not head or fusion.dims != dims:
            fusion = ConcatFusion(dims, self.num_classes)
            fusion.fc = head  # type: ignore[assignment]  # the user's layer itself, not a copy
            self._heads[id(head)] = fusion
        with torch.no_grad():
            return fusion.unimodal_logits({m: features[m].detach() for m in self.modalities})

    def decompose_with(
        self, weight: torch.Tensor, bias: torch.Tensor | None, features: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """`decompose` from a copy of the head's weight and bias (taken when the step was
        logged: the optimiser changes the layer in place afterwards). The same operations as
        ConcatFusion.unimodal_logits (u_m = addmm(b / M, h_m, W_m^T)), so the same bits; no
        autograd graph is kept."""
        out, start = {}, 0
        with torch.no_grad():
            share = (
                bias / len(self.modalities)
                if bias is not None
                else torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
            )
            for m in self.modalities:
                h = features[m]
                end = start + int(h.shape[1])
                out[m] = torch.addmm(share, h, weight[:, start:end].t())
                start = end
        return out

    def check_inputs(
        self,
        logits: Any,
        unimodal: Mapping[str, Any] | None,
        y: Any,
        loss: Any,
    ) -> None:
        """The shape and type checks of `compute` (no tensor operation, no host sync)."""
        logits = _check_tensor("logits", logits, 2)
        y = _check_tensor("y", y, 1)
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise TrackingInputError(f"y must hold integer class labels, got dtype {y.dtype}")
        batch = y.shape[0]
        if logits.shape != (batch, self.num_classes):
            raise TrackingInputError(
                f"logits has shape {list(logits.shape)}; expected [batch={batch}, num_classes={self.num_classes}]"
            )
        for m in self.modalities if unimodal is not None else ():
            t = _check_tensor(f"unimodal_logits[{m!r}]", unimodal[m], 2)  # type: ignore[index]
            if t.shape != logits.shape:
                raise TrackingInputError(
                    f"unimodal_logits[{m!r}] has shape {list(t.shape)}; expected {list(logits.shape)}"
                )
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise TrackingInputError(f"loss must be a scalar, got shape {list(loss.shape)}")
        elif loss is not None and (isinstance(loss, bool) or not isinstance(loss, int | float)):
            raise TrackingInputError(f"loss must be a number or a scalar tensor, got {type(loss).__name__}")

    @staticmethod
    def non_finite(tensors: Mapping[str, torch.Tensor], loss: Any = None) -> list[str]:
        """The names of the tensors holding NaN or inf (and `loss` when it is), in one host
        sync: each tensor's sum (NaN or inf anywhere shows there), stacked, read once."""
        names = list(tensors)
        sums = [t.detach().sum().float() for t in tensors.values()]
        if isinstance(loss, torch.Tensor):
            names.append("loss")
            sums.append(loss.detach().reshape(()).float())
        host = torch.stack(sums).tolist() if sums else []
        bad = [n for n, v in zip(names, host, strict=True) if not math.isfinite(v)]
        if loss is not None and not isinstance(loss, torch.Tensor) and not math.isfinite(float(loss)):
            bad.append("loss")
        order = {"logits": 0, "loss": 1}
        return sorted(bad, key=lambda n: order.get(n, 2))

    def compute(
        self,
        logits: torch.Tensor,
        unimodal: Mapping[str, torch.Tensor],
        y: torch.Tensor,
        loss: torch.Tensor | float | None = None,
        step: int | None = None,
    ) -> dict[str, float]:
        """The step's metrics as floats (one host sync). TrackingInputError on shapes or on
        non-finite logits / loss, naming the argument (and `step` when given)."""
        self.check_inputs(logits, unimodal, y, loss)
        batch = y.shape[0]
        u = {m: unimodal[m].detach().float() for m in self.modalities}
        logits = logits.detach()
        y = y.to(logits.device)
        probe = UnimodalProbe(u, y)
        if loss is None:
            loss_t = F.cross_entropy(logits.float(), y)
        elif isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise TrackingInputError(f"loss must be a scalar, got shape {list(loss.shape)}")
            loss_t = loss.detach().float().reshape(())
        else:
            loss_t = torch.tensor(float(loss), device=logits.device)
        values = [
            loss_t.reshape(1),
            Trainer._batch_acc(logits, y, None).reshape(1),
            probe.loss,
            probe.accuracy,
            probe.scores,
            logits.sum().reshape(1),  # NaN / inf anywhere in the logits shows here
        ]
        host = torch.cat([v.float() for v in values]).tolist()
        return self._from_host(host, batch, loss is not None, step)

    def _from_host(
        self, host: list[float], batch: int, loss_given: bool, step: int | None = None
    ) -> dict[str, float]:
        """[loss, acc, loss_m.., acc_m.., s_m.., sum(logits)] read from the device -> the keys."""
        m_count = len(self.modalities)
        scores = host[2 + 2 * m_count : 2 + 3 * m_count]
        # NaN / inf in u_m makes s_m non-finite; the loss and the logits' sum are checked here too
        checked = {"logits": host[-1], **({"loss": host[0]} if loss_given else {})}
        checked.update({f"unimodal_logits[{m!r}]": sc for m, sc in zip(self.modalities, scores, strict=True)})
        bad = [f for f, v in checked.items() if not math.isfinite(v)]
        if bad:
            raise TrackingInputError(
                f"{' and '.join(bad)} {'holds' if len(bad) == 1 else 'hold'} NaN or inf"
                f"{'' if step is None else f' at step {step}'}: this step was not "
                "recorded (the steps already stored are kept); check the learning rate and the inputs"
            )
        # rho from the scores already on the host: the same formulas (discrepancy_ratio_host)
        host[2 + 2 * m_count : 2 + 3 * m_count] = [sc / batch for sc in scores]
        host[-1:] = discrepancy_ratio_host(scores, self.ratio)
        return dict(zip(self.names, host[: len(self.names)], strict=True))

    def compute_many(
        self,
        steps: Sequence[
            tuple[torch.Tensor, Mapping[str, torch.Tensor], torch.Tensor, torch.Tensor | float | None]
        ],
        step_numbers: Sequence[int] | None = None,
    ) -> list[dict[str, float] | TrackingInputError]:
        """`compute` for several steps of the same batch size at once (the scorer thread's
        batches): the probe's operations on [steps x modalities, B, C] instead of [M, B, C],
        one host transfer for all. Rows are computed independently by the same kernels, so
        the values are `compute`'s (tests/tracking/test_tracking_offthread.py). A step with
        NaN / inf gets its TrackingInputError in its place (naming its step from
        `step_numbers` when given). Inputs are checked already."""
        n = len(steps)
        numbers = list(step_numbers) if step_numbers is not None else [None] * n
        if n == 1:
            try:
                return [self.compute(*steps[0], step=numbers[0])]
            except TrackingInputError as exc:
                return [exc]
        mods = self.modalities
        m_count = len(mods)
        with torch.no_grad():
            logits = torch.stack([s[0].detach() for s in steps])  # [S, B, C]
            device = logits.device
            y = torch.stack([s[2].to(device) for s in steps])  # [S, B]
            batch = int(y.shape[1])
            u = torch.stack([s[1][m].detach().float() for s in steps for m in mods]).float()  # [S*M, B, C]
            target = y.unsqueeze(1).expand(n, m_count, batch).reshape(n * m_count, batch, 1)
            log_p_true = u.log_softmax(-1).gather(2, target).squeeze(2)  # [S*M, B]
            scores = log_p_true.exp().sum(1)
            uni_loss = -log_p_true.mean(1)
            uni_acc = (u.argmax(2) == target.squeeze(2)).float().mean(1)
            losses = [s[3] for s in steps]
            if all(isinstance(v, torch.Tensor) for v in losses):
                loss_t = torch.stack([v.detach().float().reshape(()) for v in losses])  # type: ignore[union-attr]
            else:
                loss_t = torch.stack(
                    [
                        F.cross_entropy(s[0].detach().float(), s[2].to(device))
                        if s[3] is None
                        else s[3].detach().float().reshape(())
                        if isinstance(s[3], torch.Tensor)
                        else torch.tensor(float(s[3]), device=device)
                        for s in steps
                    ]
                )
            fused = (logits.argmax(2) == y).float().mean(1)
            table = torch.cat(
                [
                    loss_t.float().reshape(n, 1),
                    fused.reshape(n, 1),
                    uni_loss.reshape(n, m_count),
                    uni_acc.reshape(n, m_count),
                    scores.reshape(n, m_count),
                    logits.sum((1, 2)).float().reshape(n, 1),
                ],
                1,
            ).tolist()
        out: list[dict[str, float] | TrackingInputError] = []
        for row, step, number in zip(table, steps, numbers, strict=True):
            try:
                out.append(self._from_host(row, batch, step[3] is not None, number))
            except TrackingInputError as exc:
                out.append(exc)
        return out
