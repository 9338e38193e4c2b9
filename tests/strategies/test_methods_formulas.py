"""Every formula of METHODS.md against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bml_core.imbalance import discrepancy_ratio, modality_scores, official_loop_score, probe_unimodal_logits
from bml_core.models import MultimodalModel
from bml_core.models.encoders import MLPEncoder, SmallCNN
from bml_core.models.fusion import ConcatFusion, FiLMFusion, GatedFusion, SumFusion
from bml_core.strategies import StepContext
from bml_core.strategies.ogm import OGMGEParams, OGMParams
from bml_core.strategies.ogm.impl import OGM, OGMGE, ogm_coefficient
from bml_core.strategies.opm import OPMParams
from bml_core.strategies.opm.impl import OPM, opm_drop, opm_drop_probability, opm_rescale_factors

LN3 = math.log(3.0)


def _set(linear: nn.Linear, weight: list, bias: list) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))


# ---------------------------------------------------------------- section 2: uni-modal logits


def test_concat_unimodal_logits_hand_computed() -> None:
    head = ConcatFusion({"audio": 2, "visual": 1}, num_classes=2)
    _set(head.fc, [[1, 2, 3], [4, 5, 6]], [0.5, -1.0])
    feats = {"audio": torch.tensor([[1.0, -1.0]]), "visual": torch.tensor([[2.0]])}
    z = head(feats)
    u = head.unimodal_logits(feats)
    assert torch.allclose(z, torch.tensor([[5.5, 10.0]]))
    assert torch.allclose(u["audio"], torch.tensor([[-0.75, -1.5]]))  # W_a h_a + b/2
    assert torch.allclose(u["visual"], torch.tensor([[6.25, 11.5]]))  # W_v h_v + b/2
    assert torch.allclose(u["audio"] + u["visual"], z)  # exact decomposition


def test_concat_decomposition_three_modalities_random() -> None:
    torch.manual_seed(0)
    head = ConcatFusion({"a": 5, "b": 3, "c": 7}, num_classes=4)
    feats = {"a": torch.randn(8, 5), "b": torch.randn(8, 3), "c": torch.randn(8, 7)}
    u = head.unimodal_logits(feats)
    assert torch.allclose(u["a"] + u["b"] + u["c"], head(feats), atol=1e-6)


def test_sum_unimodal_logits_use_full_own_bias() -> None:
    head = SumFusion({"audio": 2, "visual": 1}, num_classes=2)
    _set(head.fcs["audio"], [[1, 2], [3, 4]], [1.0, 0.0])
    _set(head.fcs["visual"], [[2], [-1]], [0.0, 1.0])
    feats = {"audio": torch.tensor([[1.0, 1.0]]), "visual": torch.tensor([[3.0]])}
    u = head.unimodal_logits(feats)
    assert torch.allclose(u["audio"], torch.tensor([[4.0, 7.0]]))
    assert torch.allclose(u["visual"], torch.tensor([[6.0, -2.0]]))
    assert torch.allclose(u["audio"] + u["visual"], head(feats))
    head.eval()  # the same in evaluation (the official code halved the bias there)
    assert torch.allclose(head.unimodal_logits(feats)["visual"], torch.tensor([[6.0, -2.0]]))


def test_film_zero_out_hand_computed() -> None:
    head = FiLMFusion({"audio": 1, "visual": 1}, num_classes=2, hidden_dim=1)
    _set(head.film, [[1], [2]], [0.0, 0.0])  # gamma = h_a, beta = 2 h_a
    _set(head.proj, [[3]], [1.0])  # proj = 3 h_v + 1
    _set(head.fc_out, [[1], [-1]], [0.0, 0.0])
    feats = {"audio": torch.tensor([[2.0]]), "visual": torch.tensor([[1.0]])}
    assert torch.allclose(head(feats), torch.tensor([[12.0, -12.0]]))
    u = head.unimodal_logits(feats)
    assert torch.allclose(u["audio"], torch.tensor([[6.0, -6.0]]))  # visual zeroed: 2 * 1 + 4
    assert torch.allclose(u["visual"], torch.tensor([[0.0, 0.0]]))  # audio zeroed: gamma = beta = 0


def test_gated_zero_out_matches_forward_with_zeros() -> None:
    torch.manual_seed(1)
    head = GatedFusion({"audio": 4, "visual": 3}, num_classes=5, hidden_dim=8)
    feats = {"audio": torch.randn(6, 4), "visual": torch.randn(6, 3)}
    u = head.unimodal_logits(feats)
    assert torch.allclose(u["audio"], head({"audio": feats["audio"], "visual": torch.zeros(6, 3)}))
    assert torch.allclose(u["visual"], head({"audio": torch.zeros(6, 4), "visual": feats["visual"]}))


def test_probe_is_detached_and_changes_nothing() -> None:
    torch.manual_seed(0)
    model = MultimodalModel(
        {"a": MLPEncoder(4, 8, 1, 6), "b": MLPEncoder(3, 8, 1, 6)}, ConcatFusion({"a": 6, "b": 6}, 3)
    )
    x = {"a": torch.randn(5, 4), "b": torch.randn(5, 3)}
    feats = model.encode(x)
    u = probe_unimodal_logits(model, feats)
    assert all(not t.requires_grad for t in u.values())
    model.fusion(feats).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    feats = model.encode(x)
    model.fusion(feats).sum().backward()
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))


# ---------------------------------------------------------------- section 3: scores and ratio


def _two_modality_logits() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    # softmax rows: audio [0.5, 0.5], [0.75, 0.25]; visual [0.25, 0.75], [0.5, 0.5]
    u = {
        "audio": torch.tensor([[0.0, 0.0], [LN3, 0.0]]),
        "visual": torch.tensor([[0.0, LN3], [0.0, 0.0]]),
    }
    return u, torch.tensor([0, 0])


def test_scores_and_ratio_two_modalities() -> None:
    u, y = _two_modality_logits()
    s = modality_scores(u, y)
    assert torch.allclose(s, torch.tensor([1.25, 0.75]))
    for kind in ("pairwise_mean", "vs_rest", "vs_min"):
        rho = discrepancy_ratio(s, kind)
        if kind == "vs_min":
            assert torch.allclose(rho, torch.tensor([1.25 / 0.75, 1.0]), atol=1e-6)
        else:  # for M = 2 pairwise_mean and vs_rest are both the official s_1 / s_2
            assert torch.allclose(rho, torch.tensor([1.25 / 0.75, 0.75 / 1.25]), atol=1e-6)


def test_ratio_three_modalities_each_option() -> None:
    s = torch.tensor([3.0, 2.0, 1.0])
    assert torch.allclose(
        discrepancy_ratio(s, "pairwise_mean"), torch.tensor([2.25, 4 / 3, 5 / 12]), atol=1e-6
    )
    assert torch.allclose(discrepancy_ratio(s, "vs_rest"), torch.tensor([1.0, 0.5, 0.2]), atol=1e-6)
    assert torch.allclose(discrepancy_ratio(s, "vs_min"), torch.tensor([3.0, 2.0, 1.0]), atol=1e-6)


@pytest.mark.parametrize("kind", ["pairwise_mean", "vs_rest", "vs_min"])
def test_weakest_modality_never_above_one(kind: str) -> None:
    g = torch.Generator().manual_seed(3)
    for m in (2, 3, 5):
        for _ in range(50):
            s = torch.rand(m, generator=g) * 64
            rho = discrepancy_ratio(s, kind)
            assert rho[s.argmin()] <= 1 + 1e-6


@pytest.mark.parametrize("num_classes", [6, 31])
def test_vectorised_score_equals_official_loop(num_classes: int) -> None:
    g = torch.Generator().manual_seed(num_classes)
    for _ in range(5):
        logits = torch.randn(64, num_classes, generator=g) * 3
        y = torch.randint(0, num_classes, (64,), generator=g)
        ours = modality_scores({"m": logits}, y)[0]
        assert torch.allclose(ours, official_loop_score(logits, y), atol=1e-5)


# ---------------------------------------------------------------- section 4: OGM / OGM-GE


def test_ogm_coefficient_official_and_jump() -> None:
    rho = torch.tensor([1.25 / 0.75, 0.6])
    k = ogm_coefficient(rho, alpha=0.5, k_form="official")
    assert k[0].item() == pytest.approx(1 - 0.682262, abs=1e-5)  # 1 - tanh(0.5 * 5/3)
    assert k[1].item() == 1.0
    at_one = ogm_coefficient(torch.tensor([1.0, 1.0 + 1e-6]), alpha=0.5, k_form="official")
    assert at_one[0].item() == 1.0
    assert at_one[1].item() == pytest.approx(1 - 0.462117, abs=1e-5)  # jumps to 1 - tanh(alpha)


def test_ogm_coefficient_smooth_is_continuous() -> None:
    k = ogm_coefficient(torch.tensor([5 / 3, 1.0, 1.0 + 1e-6, 0.3]), alpha=0.5, k_form="smooth")
    assert k[0].item() == pytest.approx(1 - 0.321513, abs=1e-5)  # 1 - tanh(0.5 * 2/3)
    assert k[1].item() == 1.0
    assert k[2].item() == pytest.approx(1.0, abs=1e-6)
    assert k[3].item() == 1.0


def _mlp_model(seed: int = 0) -> MultimodalModel:
    torch.manual_seed(seed)
    enc = {"audio": MLPEncoder(6, 16, 2, 8), "visual": MLPEncoder(4, 16, 2, 8)}
    return MultimodalModel(enc, ConcatFusion({"audio": 8, "visual": 8}, 3))


def _backward(model: MultimodalModel) -> None:
    torch.manual_seed(1)
    x = {"audio": torch.randn(10, 6), "visual": torch.randn(10, 4)}
    y = torch.randint(0, 3, (10,))
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()


def _ctx(scores: list[float]) -> StepContext:
    return StepContext(
        epoch=0, step=1, modalities=["audio", "visual"], scores=torch.tensor(scores), y=torch.zeros(1)
    )


@pytest.mark.parametrize("host_math", [True, False])
@pytest.mark.parametrize("which", ["weights", "all"])
def test_ogm_scales_exactly_the_selected_encoder_gradients(which: str, host_math: bool) -> None:
    model = _mlp_model()
    _backward(model)
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    strat = OGM(OGMParams(alpha=0.5, params=which), model, torch.device("cpu"), seed=0)
    strat.host_math = host_math
    ctx = _ctx([1.25, 0.75])  # rho_audio = 5/3 -> k = 1 - tanh(5/6); visual k = 1
    strat.after_backward(ctx)
    k = 1 - math.tanh(0.5 * 5 / 3)
    assert ctx.metrics["ogm/coef/audio"] == pytest.approx(k, rel=1e-6)
    assert ctx.metrics["ogm/coef/visual"] == 1.0
    for n, p in model.named_parameters():
        selected = n.startswith("encoders.audio") and (which == "all" or p.dim() >= 2)
        expected = before[n] * k if selected else before[n]
        assert torch.allclose(p.grad, expected, atol=1e-7), n
        if not selected:
            assert torch.equal(p.grad, before[n]), n  # bitwise untouched, fusion head included


def test_ogm_conv_only_leaves_mlp_alone_and_scales_conv() -> None:
    model = _mlp_model()
    _backward(model)
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    OGM(OGMParams(alpha=0.5, params="conv_only"), model, torch.device("cpu"), 0).after_backward(
        _ctx([2.0, 1.0])
    )
    assert all(torch.equal(p.grad, before[n]) for n, p in model.named_parameters())

    torch.manual_seed(0)
    cnn = MultimodalModel(
        {"audio": SmallCNN(1, 4, 8), "visual": MLPEncoder(4, 8, 1, 8)},
        ConcatFusion({"audio": 8, "visual": 8}, 3),
    )
    x = {"audio": torch.randn(6, 8, 8), "visual": torch.randn(6, 4)}
    nn.functional.cross_entropy(cnn(x), torch.randint(0, 3, (6,))).backward()
    before = {n: p.grad.clone() for n, p in cnn.named_parameters()}
    OGM(OGMParams(alpha=1.0, params="conv_only"), cnn, torch.device("cpu"), 0).after_backward(
        _ctx([2.0, 1.0])
    )
    k = 1 - math.tanh(2.0)
    for n, p in cnn.named_parameters():
        expected = before[n] * k if (n.startswith("encoders.audio") and p.dim() == 4) else before[n]
        assert torch.allclose(p.grad, expected, atol=1e-7), n


@pytest.mark.parametrize("host_math", [True, False])
def test_ogm_ge_noise_has_the_unmodulated_std(host_math: bool) -> None:
    torch.manual_seed(0)
    big = {"audio": nn.Sequential(nn.Linear(512, 512)), "visual": nn.Sequential(nn.Linear(256, 256))}
    for e in big.values():
        e.out_dim = e[0].out_features  # type: ignore[assignment]
    model = MultimodalModel(big, ConcatFusion({"audio": 512, "visual": 256}, 3))
    g_audio = torch.randn(512, 512) * 0.3 + 0.05
    g_visual = torch.randn(256, 256) * 2.0
    model.encoders["audio"][0].weight.grad = g_audio.clone()
    model.encoders["visual"][0].weight.grad = g_visual.clone()
    strat = OGMGE(OGMGEParams(alpha=0.5), model, torch.device("cpu"), seed=123)
    strat.host_math = host_math
    strat.after_backward(_ctx([1.25, 0.75]))
    k = 1 - math.tanh(0.5 * 5 / 3)
    noise_a = model.encoders["audio"][0].weight.grad - k * g_audio
    noise_v = model.encoders["visual"][0].weight.grad - g_visual  # k = 1, noise still added
    assert noise_a.std().item() == pytest.approx(g_audio.std().item(), rel=0.01)
    assert noise_v.std().item() == pytest.approx(g_visual.std().item(), rel=0.01)
    assert abs(noise_a.mean().item()) < 0.01 * g_audio.std().item() * 5
    # biases (1-D) are not selected with params=weights: no noise there
    assert model.encoders["audio"][0].bias.grad is None


def test_ogm_inactive_outside_schedule() -> None:
    model = _mlp_model()
    _backward(model)
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    strat = OGMGE(OGMGEParams(alpha=0.5, start_epoch=2, end_epoch=3), model, torch.device("cpu"), 0)
    ctx = _ctx([3.0, 1.0])
    strat.after_backward(ctx)  # epoch 0
    assert all(torch.equal(p.grad, before[n]) for n, p in model.named_parameters())
    assert ctx.metrics["ogm/coef/audio"] == 1.0


# ---------------------------------------------------------------- section 5: OPM


def test_opm_drop_probability_hand_computed() -> None:
    q = opm_drop_probability(torch.tensor([5 / 3, 0.6, 1.0]), q_base=0.5, lam=0.5)
    assert q[0].item() == pytest.approx(0.5 * (1 + 0.5 * 0.582783), abs=1e-5)  # tanh(2/3) = 0.582783
    assert q[1].item() == 0.0 and q[2].item() == 0.0
    clipped = opm_drop_probability(torch.tensor([3.0]), q_base=0.9, lam=1.0)
    assert clipped.item() == 1.0  # 0.9 * (1 + tanh(2)) = 1.7676 -> 1


def test_opm_gate_frequency_close_to_p_exe() -> None:
    g = torch.Generator().manual_seed(0)
    feats = {"a": torch.ones(4, 2), "b": torch.ones(4, 2)}
    fired = [opm_drop(feats, torch.tensor([0.5, 0.0]), 0.7, "global", g)[2].item() for _ in range(4000)]
    assert sum(fired) / len(fired) == pytest.approx(0.7, abs=0.025)


def test_opm_per_modality_drop_frequency_close_to_q() -> None:
    g = torch.Generator().manual_seed(1)
    feats = {"a": torch.ones(20000, 3), "b": torch.ones(20000, 5)}
    q = torch.tensor([0.3, 0.6])
    _, keep, gate, alive = opm_drop(feats, q, 1.0, "none", g)
    assert gate.item()
    dropped = 1 - keep.float().mean(0)
    assert dropped[0].item() == pytest.approx(0.3, abs=0.015)
    assert dropped[1].item() == pytest.approx(0.6, abs=0.015)
    assert alive.float().mean().item() == pytest.approx(1 - 0.3 * 0.6, abs=0.015)  # independent masks


def test_opm_rescale_options_hand_computed() -> None:
    q = torch.tensor([0.4, 0.0])
    weights = torch.tensor([3.0, 1.0]) / 4  # d_a = 3, d_b = 1
    # global: theta = (3 * 0.4 + 0) / 4 = 0.3 -> every kept feature / 0.7
    assert torch.allclose(opm_rescale_factors(q, weights, "global"), torch.tensor([1 / 0.7, 1 / 0.7]))
    assert torch.allclose(opm_rescale_factors(q, weights, "per_modality"), torch.tensor([1 / 0.6, 1.0]))
    assert torch.allclose(opm_rescale_factors(q, weights, "none"), torch.tensor([1.0, 1.0]))
    g = torch.Generator().manual_seed(2)
    out, keep, _, _ = opm_drop({"a": torch.ones(500, 3), "b": torch.ones(500, 1)}, q, 1.0, "global", g)
    kept_a = out["a"][keep[:, 0]]
    assert torch.allclose(kept_a, torch.full_like(kept_a, 1 / 0.7))
    assert torch.all(out["a"][~keep[:, 0]] == 0)
    assert torch.allclose(out["b"], torch.full_like(out["b"], 1 / 0.7))  # q_b = 0: all kept, rescaled


def test_opm_gate_off_changes_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    feats = {"a": torch.randn(50, 3), "b": torch.randn(50, 2)}
    out, keep, gate, alive = opm_drop(feats, torch.tensor([0.9, 0.5]), 0.0, "global", g)
    assert not gate.item() and keep.all() and alive.all()
    assert torch.equal(out["a"], feats["a"]) and torch.equal(out["b"], feats["b"])


@pytest.mark.parametrize("host_math", [True, False])
def test_opm_strategy_uses_rho_and_logs(host_math: bool) -> None:
    model = _mlp_model()
    strat = OPM(OPMParams(q_base=0.5, lam=0.5, p_exe=1.0), model, torch.device("cpu"), seed=0)
    strat.host_math = host_math  # False: the device (GPU) code path, run on the CPU
    ctx = _ctx([1.25, 0.75])
    feats = {"audio": torch.ones(4000, 8), "visual": torch.ones(4000, 8)}
    out, alive = strat.transform_features(feats, ctx)
    q_a = 0.5 * (1 + 0.5 * math.tanh(5 / 3 - 1))
    assert ctx.metrics["opm/drop_prob/audio"] == pytest.approx(q_a, rel=1e-5)
    assert ctx.metrics["opm/drop_prob/visual"] == 0.0  # the weaker modality is never dropped
    assert ctx.metrics["opm/dropped/audio"] == pytest.approx(q_a, abs=0.03)
    assert ctx.metrics["opm/dropped/visual"] == 0.0
    assert ctx.metrics["opm/gate"] == 1.0
    assert alive is None or alive.all()  # visual is always kept: no sample is removed


@pytest.mark.parametrize("host_math", [True, False])
def test_opm_gate_and_drop_frequencies_through_the_strategy(host_math: bool) -> None:
    model = _mlp_model()
    strat = OPM(OPMParams(p_exe=0.7, rescale="per_modality"), model, torch.device("cpu"), seed=5)
    strat.host_math = host_math
    strat.forced_q = torch.tensor([0.4, 0.2])
    fired, dropped, removed = [], [], 0
    feats = {"audio": torch.ones(200, 8), "visual": torch.ones(200, 8)}
    for _ in range(600):
        ctx = _ctx([1.0, 1.0])
        out, alive = strat.transform_features(feats, ctx)
        fired.append(ctx.metrics["opm/gate"])
        if ctx.metrics["opm/gate"]:
            dropped.append((ctx.metrics["opm/dropped/audio"], ctx.metrics["opm/dropped/visual"]))
            kept_a = out["audio"][out["audio"][:, 0] != 0]
            assert torch.allclose(kept_a, torch.full_like(kept_a, 1 / 0.6))  # per_modality: / (1 - q_a)
            assert alive is not None
            removed += int((~alive).sum())
    assert sum(fired) / len(fired) == pytest.approx(0.7, abs=0.05)
    mean_a = sum(a for a, _ in dropped) / len(dropped)
    mean_v = sum(v for _, v in dropped) / len(dropped)
    assert mean_a == pytest.approx(0.4, abs=0.01) and mean_v == pytest.approx(0.2, abs=0.01)
    assert removed / (200 * len(dropped)) == pytest.approx(0.4 * 0.2, abs=0.01)  # both dropped


def test_host_formulas_equal_tensor_formulas() -> None:
    from bml_core.imbalance import discrepancy_ratio_host
    from bml_core.strategies.ogm.impl import ogm_coefficient_host
    from bml_core.strategies.opm.impl import opm_drop_probability_host, opm_rescale_factors_host

    g = torch.Generator().manual_seed(4)
    for m in (2, 3, 4):
        for _ in range(20):
            s = torch.rand(m, generator=g, dtype=torch.float64) * 50
            for kind in ("pairwise_mean", "vs_rest", "vs_min"):
                rho = discrepancy_ratio(s, kind)
                assert discrepancy_ratio_host(s.tolist(), kind) == pytest.approx(rho.tolist(), rel=1e-9)
            rho = discrepancy_ratio(s)
            for form in ("official", "smooth"):
                k = ogm_coefficient(rho, 0.7, form).tolist()
                assert ogm_coefficient_host(rho.tolist(), 0.7, form) == pytest.approx(k, rel=1e-9)
            q = opm_drop_probability(rho, 0.6, 0.9)
            assert opm_drop_probability_host(rho.tolist(), 0.6, 0.9) == pytest.approx(q.tolist(), rel=1e-9)
            w = torch.rand(m, generator=g, dtype=torch.float64)
            w = w / w.sum()
            for rescale in ("global", "per_modality", "none"):
                f = opm_rescale_factors(q, w, rescale).tolist()
                assert opm_rescale_factors_host(q.tolist(), w.tolist(), rescale) == pytest.approx(f, rel=1e-9)


def test_opm_previous_rho_source() -> None:
    model = _mlp_model()
    strat = OPM(OPMParams(p_exe=1.0, q_source="previous"), model, torch.device("cpu"), seed=0)
    feats = {"audio": torch.ones(8, 8), "visual": torch.ones(8, 8)}
    ctx1 = _ctx([1.0, 1.0])
    strat.transform_features(feats, ctx1)  # no previous: uses this batch's rho = 1 -> q = 0
    assert ctx1.metrics["opm/drop_prob/audio"] == 0.0
    ctx2 = _ctx([3.0, 1.0])
    strat.transform_features(feats, ctx2)  # uses the previous batch's rho (1.0) -> still 0
    assert ctx2.metrics["opm/drop_prob/audio"] == 0.0
    ctx3 = _ctx([1.0, 1.0])
    strat.transform_features(feats, ctx3)  # previous rho = 3 -> q > 0
    assert ctx3.metrics["opm/drop_prob/audio"] > 0.5
