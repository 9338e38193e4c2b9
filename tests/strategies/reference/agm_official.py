"""The authors' AGM step, re-implemented from lihong2303/AGM@5a65542c70b1c7c15c5df291e77fa9cf2bbb9549
(torch only, no bml_core imports).

- model/CREMAD_net.py L10-17: Modality_Visual / Modality_Audio:
  m_a = 0.5 (total - pad_audio + pad_visual), m_v = 0.5 (total - pad_visual + pad_audio),
  so v(empty) = 0 and m_a + m_v = total.
- model/CREMAD_net.py L58-67 (GradMod.forward): the full forward in train mode, then
  `self.net.eval()`, the padded forwards (with gradient), `self.net.train()`.
- model/CREMAD_net.py L45-51: full backward hooks scale dL/dm_a, dL/dm_v by scale_a/scale_v.
- run/CREMAD_main.py L130-151: score = batch mean of -log softmax(m)[y] (p < 1e-8 -> 1e-8),
  ratio_a = exp(s_v - s_a), optimal_ratio_a = exp(train_s_v - train_s_a),
  coeff_a = exp(alpha * min(optimal_ratio_a - ratio_a, 10)).
- run/CREMAD_main.py L233-238: if max/min of the fusion fc_out weight gradient leaves
  [-1, 1], nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _score(out: torch.Tensor, y: torch.Tensor) -> float:
    p = out.detach().softmax(1)[torch.arange(len(y)), y]
    return float(-torch.log(p.clamp_min(1e-8)).mean())


def official_step(model, net, head_weight, x_a, x_v, y, train_s_a=0.0, train_s_v=0.0, alpha=1.0):
    """One official AGM forward/backward. `model` toggles train/eval for every module, `net(a, v)`
    gives the fused logits, `head_weight` is the fusion layer's weight. Returns
    (logits m_a + m_v, coeff_a, coeff_v); the (clipped) gradients stay in the parameters."""
    model.train()
    total = net(x_a, x_v)
    model.eval()
    pad_visual = net(x_a, torch.zeros_like(x_v))
    pad_audio = net(torch.zeros_like(x_a), x_v)
    model.train()
    m_a = 0.5 * (total - pad_audio + pad_visual)
    m_v = 0.5 * (total - pad_visual + pad_audio)
    s_a, s_v = _score(m_a, y), _score(m_v, y)
    coeff_a = math.exp(alpha * min(math.exp(train_s_v - train_s_a) - math.exp(s_v - s_a), 10))
    coeff_v = math.exp(alpha * min(math.exp(train_s_a - train_s_v) - math.exp(s_a - s_v), 10))
    m_a.register_hook(lambda g: g * coeff_a)
    m_v.register_hook(lambda g: g * coeff_v)
    out = m_a + m_v
    F.cross_entropy(out, y).backward()
    g = head_weight.grad
    if torch.max(g) > 1 or torch.min(g) < -1:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    return out, coeff_a, coeff_v
