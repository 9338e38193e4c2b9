"""The authors' MSLR and MSES epoch updates. No code came with the MSLR/MSES paper (Yao &
Mihalcea, Findings of ACL 2022); the only released implementation is in the AGM repository,
lihong2303/AGM@5a65542c70b1c7c15c5df291e77fa9cf2bbb9549 run/CREMAD_main.py, re-implemented
here with plain floats (no bml_core imports).

MSLR (L194-198, L627-629, L671-684): audio_lr_ratio starts at 1.0; after each validation,
while the memory holds fewer than 5 accuracies the accuracy is appended; once it holds 5,
ratio = acc_t / mean(memory) (the 5 PREVIOUS epochs), then the oldest is dropped and acc_t
appended. The next epoch trains with coeff = init_coeff * ratio (0.9 audio, 1.1 visual).

MSES (L686-729): epoch 1: smoothed = raw, min = raw, best epoch 1; later
smoothed = 0.6 * previous RAW + 0.4 * raw; a strictly lower smoothed loss is a new best (a
full model + optimizer checkpoint); once epoch - best_epoch > 80 the modality stops and the
checkpoint of its best epoch is reloaded (model and optimizer).
"""

from __future__ import annotations


def mslr_coefficients(accs: list[float], init_coeff: float, window: int = 5) -> list[float]:
    """The coefficient the official loop trains with AFTER each epoch's validation."""
    memory: list[float] = []
    ratio = 1.0
    out = []
    for acc in accs:
        if len(memory) < window:
            memory.append(acc)
        else:
            ratio = acc / (sum(memory) / len(memory))
            memory = memory[1:] + [acc]
        out.append(init_coeff * ratio)
    return out


def mses_trace(raw: list[float], patience: int = 80) -> tuple[list[float], int | None, int | None]:
    """(smoothed losses, epoch (1-based) at which the modality stops, best epoch reloaded)."""
    smoothed_all: list[float] = []
    best_loss = best_epoch = prev = None
    for epoch, loss in enumerate(raw, start=1):
        if epoch == 1:
            best_loss, best_epoch, smoothed = loss, 1, loss
        else:
            smoothed = 0.6 * prev + 0.4 * loss
        prev = loss
        smoothed_all.append(smoothed)
        if best_loss > smoothed:
            best_loss, best_epoch = smoothed, epoch
        if epoch - best_epoch > patience:
            return smoothed_all, epoch, best_epoch
    return smoothed_all, None, None
