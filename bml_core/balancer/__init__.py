"""`bml_core.Balancer`: the strategies' own code (bml_core/strategies/*/impl.py, through a
StepContext) applied to a user's model inside the user's loop. The model exposes `encoders`
(nn.ModuleDict: modality -> features) and `head` (the dict of features -> logits). An nn.Linear
head over the concatenation in modality order is decomposed as the official OGM-GE code does
(u_m = W_m h_m + b / M, bml_core.models.fusion.ConcatFusion); any other head needs
`model.unimodal_logits(features)`.

    balancer = bml_core.Balancer(model, ["opm", "ogm_ge"], run=run)
    out = balancer.forward(x)                 # OPM masks applied to out.features
    loss = F.cross_entropy(out.logits, y)
    optimizer.zero_grad()
    balancer.backward(loss, out, y)           # loss.backward(), rho, OGM(-GE) scaling, telemetry
    optimizer.step()

Epoch-level strategies (mmcosine, pmr, mslr, mses, infreg) get what they need from the loop's
own objects through a small Runtime (bml_core/balancer/runtime.py): `optimizer=` (built on
`Balancer.param_groups(model)`: per-modality learning rates), `loaders={"train": ..., "val":
...}` and the epoch calls `balancer.epoch_start()` / `balancer.epoch_end(val_metrics=None)`
(returns `should_stop`). Strategies that need what an own loop does not lend (extra forward
passes through the trainer, a held-out split, the whole step), or whose need was not passed,
are refused at construction with the missing piece named: the Balancer never runs a strategy
as a silent no-op."""

from __future__ import annotations

from bml_core.balancer.engine import Balancer, BalancerError, BalancerOutput

__all__ = ["Balancer", "BalancerError", "BalancerOutput"]
