"""mslr and mses (STRATEGIES.md section 2.2): the formulas against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from bml_core.strategies.mslr.impl import mses_update, mslr_ratio, mslr_update, smoothed_loss

# val accuracy per epoch (rows), modalities a, v (columns)
HISTORY = torch.tensor([[0.5, 0.2], [0.6, 0.2], [0.7, 0.1]], dtype=torch.float64)


def test_ratio_is_current_over_the_mean_of_the_last_window() -> None:
    # window 2: means [(0.6 + 0.7)/2, (0.2 + 0.1)/2] = [0.65, 0.15] -> [0.7/0.65, 0.1/0.15] = [14/13, 2/3]
    assert mslr_ratio(HISTORY, 2).tolist() == pytest.approx([14 / 13, 2 / 3])
    # window 5 > 3 epochs: every epoch, means [0.6, 0.5/3] -> [0.7/0.6, 0.1/(0.5/3)] = [7/6, 0.6]
    assert mslr_ratio(HISTORY, 5).tolist() == pytest.approx([7 / 6, 0.6])
    # one epoch: the current value is the whole window -> 1
    assert mslr_ratio(HISTORY[:1], 5).tolist() == [1.0, 1.0]
    # a zero mean (a modality at 0 accuracy throughout) leaves the multiplier alone
    assert mslr_ratio(torch.zeros(2, 2, dtype=torch.float64), 5).tolist() == [1.0, 1.0]


def test_multiplier_update_compounds_over_epochs() -> None:
    # start [1, 2], window 2, history above: [1 * 14/13, 2 * 2/3] = [14/13, 4/3]
    mult = mslr_update(torch.tensor([1.0, 2.0], dtype=torch.float64), HISTORY, 2)
    assert mult.tolist() == pytest.approx([14 / 13, 4 / 3])
    # one modality over three epochs, window 2: acc 0.5 -> ratio 1 (mult 1);
    # acc 0.6 -> 0.6 / 0.55 = 12/11 (mult 12/11); acc 0.3 -> 0.3 / 0.45 = 2/3 (mult 12/11 * 2/3 = 8/11)
    accs = [0.5, 0.6, 0.3]
    mult = torch.ones(1, dtype=torch.float64)
    seen = []
    for t in range(3):
        mult = mslr_update(mult, torch.tensor(accs[: t + 1], dtype=torch.float64)[:, None], 2)
        seen.append(float(mult))
    assert seen == pytest.approx([1.0, 12 / 11, 8 / 11])


def test_mses_smoothed_loss_is_point_six_previous_plus_point_four_current() -> None:
    first = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert smoothed_loss(None, first).tolist() == [1.0, 2.0]
    # [0.6 * 1 + 0.4 * 0.5, 0.6 * 2 + 0.4 * 3] = [0.8, 2.4]
    assert smoothed_loss(first, torch.tensor([0.5, 3.0], dtype=torch.float64)).tolist() == pytest.approx(
        [0.8, 2.4]
    )


def test_mses_freezes_after_patience_epochs_without_improvement() -> None:
    # patience 2. Raw val losses, a: 1.0, 0.5, 0.9, 0.9, 0.9; v: 2.0, 1.5, 1.2, 1.0, 0.9
    # smoothed a: 1.0, 0.8, 0.84, 0.864, 0.8784   (0.6 prev + 0.4 cur)
    #   epoch 0 improves (inf -> 1.0), epoch 1 improves (0.8), epochs 2, 3 do not:
    #   since_best 0, 0, 1, 2 -> frozen at epoch 3 (2 >= patience); epoch 4: stays frozen, count kept
    # smoothed v: 2.0, 1.8, 1.56, 1.336, 1.1616 -> improves every epoch, never frozen
    raw = torch.tensor([[1.0, 2.0], [0.5, 1.5], [0.9, 1.2], [0.9, 1.0], [0.9, 0.9]], dtype=torch.float64)
    smoothed: torch.Tensor | None = None
    best = torch.full((2,), math.inf, dtype=torch.float64)
    since = torch.zeros(2, dtype=torch.long)
    frozen = torch.zeros(2, dtype=torch.bool)
    log = []
    for t in range(5):
        smoothed = smoothed_loss(smoothed, raw[t])
        best, since, frozen, improved, newly = mses_update(smoothed, best, since, frozen, patience=2)
        log.append((smoothed.tolist(), since.tolist(), frozen.tolist(), improved.tolist(), newly.tolist()))
    assert [row[0][0] for row in log] == pytest.approx([1.0, 0.8, 0.84, 0.864, 0.8784])
    assert [row[0][1] for row in log] == pytest.approx([2.0, 1.8, 1.56, 1.336, 1.1616])
    assert [row[1] for row in log] == [[0, 0], [0, 0], [1, 0], [2, 0], [2, 0]]
    assert [row[2] for row in log] == [[False, False]] * 3 + [[True, False]] * 2
    assert [row[3][0] for row in log] == [True, True, False, False, False]
    assert [row[4] for row in log] == [[False, False]] * 3 + [[True, False], [False, False]]
    assert best.tolist() == pytest.approx([0.8, 1.1616])
