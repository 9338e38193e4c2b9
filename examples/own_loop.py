"""Your own model and training loop, tracked by BML Studio: the paper's per-step imbalance
telemetry (rho per modality, uni-modal and fused accuracies) on /live, /compare and /report.

    python examples/own_loop.py [--steps 300] [--name NAME]

Plain PyTorch; the model is defined here, not in bml_core. The store is BML_DATABASE_URL, else
the SQLite store under BML_HOME (the one `bml up` serves)."""

from __future__ import annotations

import argparse

import torch
from torch import nn

import bml_core


class AudioVisualNet(nn.Module):
    """Two encoders (modality -> features) and a linear head over their concatenation."""

    def __init__(self, audio_dim: int = 20, visual_dim: int = 30, hidden: int = 32, classes: int = 4):
        super().__init__()
        self.encoders = nn.ModuleDict(
            {
                "audio": nn.Sequential(nn.Linear(audio_dim, hidden), nn.ReLU()),
                "visual": nn.Sequential(nn.Linear(visual_dim, hidden), nn.ReLU()),
            }
        )
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = {m: enc(x[m]) for m, enc in self.encoders.items()}
        return self.head(torch.cat([feats["audio"], feats["visual"]], dim=1)), feats


def make_data(n: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Audio carries the label strongly, visual weakly: the imbalance the paper studies."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    centers_a, centers_v = torch.randn(4, 20, generator=g) * 2.0, torch.randn(4, 30, generator=g) * 0.5
    x = {
        "audio": centers_a[y] + torch.randn(n, 20, generator=g),
        "visual": centers_v[y] + torch.randn(n, 30, generator=g),
    }
    return x, y


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--name", default="own-loop-example")
    ap.add_argument("--group", default="own-loop-example")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = AudioVisualNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x_all, y_all = make_data(4096)
    x_val, y_val = make_data(512, seed=1)
    config = {"lr": 0.05, "momentum": 0.9, "batch_size": 64, "seed": 0}

    with bml_core.init(
        name=args.name, group=args.group, config=config, modalities=["audio", "visual"], num_classes=4
    ) as run:
        # ---- BALANCER: apply a strategy to this model here (branch `balancer`), e.g.
        # balancer = bml_core.Balancer(model, strategies=["ogm_ge"], run=run)
        # ---- end of the Balancer's place
        for step in range(args.steps):
            idx = torch.randint(0, len(y_all), (64,))
            x, y = {m: v[idx] for m, v in x_all.items()}, y_all[idx]
            logits, feats = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log_step(logits=logits, features=feats, head=model.head, y=y, loss=loss)
            if (step + 1) % 100 == 0:
                with torch.no_grad():
                    logits, feats = model(x_val)
                    u = run.scorer.decompose(model.head, feats)
                    per_mod = {m: float((u[m].argmax(1) == y_val).float().mean()) for m in u}
                    acc = float((logits.argmax(1) == y_val).float().mean())
                run.log_eval("val", acc=acc, acc_per_modality=per_mod)
        print(f"run {run.id}: {run.step} steps; open /live?run={run.id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
